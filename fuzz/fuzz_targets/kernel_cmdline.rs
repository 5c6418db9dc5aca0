//! roost's options on the kernel command line.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let line = String::from_utf8_lossy(data);
    let o = roost::vm::cmdline::parse(&line);
    assert!(o.config_file.is_absolute());
});

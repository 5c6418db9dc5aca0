//! `files` of a service: their contents (raw, base64, or a machine secret), paths, modes and
//! owners.

use super::checks::*;
use super::containers::*;
use super::decode::decode_base64;
use super::typed::*;
use super::ConfigError;

use super::services::Context;

pub const SECRET_FILE_MODE: u32 = 0o400;

pub(super) fn files(
    i: usize,
    c: &ContainerConfig,
    cx: &Context<'_>,
) -> Result<Vec<ServiceFile>, ConfigError> {
    let at = |rest: &str| format!("Containers[{i}].files{rest}");
    check_len(&at(""), &c.files)?;
    let mut out: Vec<ServiceFile> = Vec::new();
    for (j, file) in c.files.iter().enumerate() {
        let here = |rest: &str| at(&format!("[{j}].{rest}"));
        let path = check_absolute(&here("guest_path"), &file.guest_path)?;
        if file.local_path.is_some() {
            return Err(f(
                here("local_path"),
                "is flyctl's: it reads the file and sends its contents as raw_value (base64)",
            ));
        }
        let (contents, secret) =
            match (&file.raw_value, &file.secret_name, &file.image_config) {
                (Some(raw), None, None) => (
                    decode_base64(raw).map_err(|e| f(here("raw_value"), e))?,
                    false,
                ),
                (None, Some(name), None) => match cx.secrets.get(name) {
                    Some(value) => (value.expose().as_bytes().to_vec(), true),
                    None => {
                        return Err(f(
                            here("secret_name"),
                            format!("no secret named {name:?} in Secrets"),
                        ))
                    }
                },
                (None, None, Some(_)) => return Err(f(
                    here("image_config"),
                    "an image's config as a file is not supported: give raw_value or secret_name",
                )),
                _ => {
                    return Err(f(
                        format!("Containers[{i}].files[{j}]"),
                        "needs exactly one of raw_value, secret_name or image_config",
                    ))
                }
            };
        // A secret's file is its user's alone by default: process services share the VM's
        // root, so 0644 would hand it to every other service (Fly's containers each have a
        // root of their own, where 0644 reaches no one else).
        let mode = file
            .mode
            .unwrap_or(if secret { SECRET_FILE_MODE } else { 0o644 });
        if mode > 0o7777 {
            return Err(f(here("mode"), format!("{mode:o} has bits beyond 07777")));
        }
        if out.iter().any(|o| o.path == path) {
            return Err(f(here("guest_path"), "is written twice"));
        }
        out.push(ServiceFile {
            path,
            contents,
            mode,
            secret,
        });
    }
    Ok(out)
}

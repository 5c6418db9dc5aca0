//! Turning off TX checksum offload (`ethtool -K eth0 tx off`): with virtio-net behind some
//! host bridges offloaded checksums arrive wrong, which Fly's init works around the same way.

use std::os::fd::AsRawFd;

const ETHTOOL_STXCSUM: u32 = 0x17;

#[repr(C)]
struct EthtoolValue {
    cmd: u32,
    data: u32,
}

#[repr(C)]
struct IfReq {
    name: [libc::c_char; libc::IFNAMSIZ],
    data: *mut EthtoolValue,
    _pad: [u8; 16],
}

/// Disables TX checksum offload on `iface`.
pub fn disable_tx_checksum(iface: &str) -> std::io::Result<()> {
    if iface.len() >= libc::IFNAMSIZ {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "interface name too long",
        ));
    }
    let sock =
        std::net::UdpSocket::bind("0.0.0.0:0").or_else(|_| std::net::UdpSocket::bind("[::]:0"))?;
    let mut value = EthtoolValue {
        cmd: ETHTOOL_STXCSUM,
        data: 0,
    };
    let mut req = IfReq {
        name: [0; libc::IFNAMSIZ],
        data: &mut value,
        _pad: [0; 16],
    };
    for (dst, src) in req.name.iter_mut().zip(iface.bytes()) {
        *dst = src as libc::c_char;
    }
    // SAFETY: `req` is a valid ifreq whose data pointer refers to `value`, both alive for the
    // duration of the call; SIOCETHTOOL reads the name and the ethtool_value.
    let rc = unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCETHTOOL as _, &mut req) };
    if rc < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

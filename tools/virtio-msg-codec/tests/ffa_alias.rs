//! The FF-A bus module's module alias names the device-role UUID of the codec.
//!
//! `module!` takes the alias as a string literal, so the UUID is written twice: once as
//! bytes in rust/codec/ffa.rs, once in drivers/virtio_msg_ffa/ffa_main.rs. This keeps the
//! two the same.

use virtio_msg_codec::ffa::DEVICE_ROLE_UUID;

/// The UUID as Linux's `%pUb` prints it, which is how the arm_ffa bus writes MODALIAS.
fn pub_format(uuid: &[u8; 16]) -> String {
    let hex: Vec<String> = uuid.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        hex[0..4].concat(),
        hex[4..6].concat(),
        hex[6..8].concat(),
        hex[8..10].concat(),
        hex[10..16].concat()
    )
}

#[test]
fn the_module_alias_is_the_device_role_uuid() {
    let source = include_str!("../../../drivers/virtio_msg_ffa/ffa_main.rs");
    let aliases: Vec<&str> = source
        .lines()
        .filter_map(|l| l.trim().strip_prefix("alias: [\""))
        .filter_map(|l| l.strip_suffix("\"],"))
        .collect();
    assert_eq!(
        aliases,
        vec![format!("arm_ffa:*:{}", pub_format(&DEVICE_ROLE_UUID))],
        "drivers/virtio_msg_ffa/ffa_main.rs's module! alias"
    );
}

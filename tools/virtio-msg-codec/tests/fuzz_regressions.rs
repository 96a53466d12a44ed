//! Replays every input the decode fuzz target once crashed on (fuzz/regressions/), plus a
//! few hand-made edge inputs, through the same harness the fuzzer runs.

use std::fs;
use std::path::Path;

use virtio_msg_codec::fuzzing::decode_one;

#[test]
fn replay_fuzz_regressions() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/regressions");
    let mut replayed = 0;
    for entry in fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        if path.file_name().is_some_and(|name| name == "README") {
            continue;
        }
        decode_one(&fs::read(&path).unwrap());
        replayed += 1;
    }
    println!(
        "replayed {replayed} regression inputs from {}",
        dir.display()
    );
}

#[test]
fn harness_edge_inputs() {
    decode_one(&[]);
    for selector in 0..16u8 {
        decode_one(&[selector]);
        // A valid GET_DEVICE_INFO request, then the same cut short.
        let msg = [selector, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x08, 0x00];
        decode_one(&msg);
        decode_one(&msg[..5]);
        // The chunk helper at the very end of the config space with the smallest size.
        decode_one(&[
            selector, 0xff, 0xff, 0xff, 0xff, 0x01, 0x00, 0x00, 0x00, 52, 0,
        ]);
    }
}

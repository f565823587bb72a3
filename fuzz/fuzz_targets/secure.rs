#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| raft_fuzz::secure::run(data));

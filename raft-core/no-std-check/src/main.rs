//! Uses raft-core from a `#![no_std]` binary (see Cargo.toml for why).

#![no_std]
#![no_main]

extern crate alloc;

use core::alloc::{GlobalAlloc, Layout};
use raft_core::{Config, Instant, Node, NodeId, Restored};

struct NoHeap;

// SAFETY: returning null is how an allocator reports failure; nothing is ever freed.
unsafe impl GlobalAlloc for NoHeap {
    unsafe fn alloc(&self, _layout: Layout) -> *mut u8 {
        core::ptr::null_mut()
    }
    unsafe fn dealloc(&self, _ptr: *mut u8, _layout: Layout) {}
}

#[global_allocator]
static HEAP: NoHeap = NoHeap;

#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(no_mangle)]
pub extern "C" fn main(_argc: i32, _argv: *const *const u8) -> i32 {
    let config = Config::new(NodeId(1), [NodeId(1)]);
    match Node::new(config, Restored::fresh(), Instant::ZERO) {
        Ok(mut node) => {
            node.handle_timeout(Instant::from_micros(1_000_000));
            while node.poll_output().is_some() {}
            0
        }
        Err(_) => 1,
    }
}

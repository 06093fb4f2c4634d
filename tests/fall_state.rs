//! The detector's state is bounded: a fixed size under 2 KiB and no allocation while streaming.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use vigil::fall::FallDetector;

struct CountingAllocator;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::SeqCst);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

#[test]
fn state_is_at_most_2_kib_and_streaming_never_allocates() {
    assert!(
        FallDetector::state_size() <= 2048,
        "{} bytes",
        FallDetector::state_size()
    );
    assert_eq!(
        FallDetector::state_size(),
        std::mem::size_of::<FallDetector>()
    );
    let mut detector = FallDetector::new(200).unwrap();
    // Ten simulated minutes of jogging-like motion with drops and impacts.
    let samples: Vec<[f32; 3]> = (0..120_000u32)
        .map(|i| {
            let t = i as f32 / 200.0;
            let bounce = (t * 2.0 * std::f32::consts::PI * 2.5).sin();
            [
                0.3 * (t * 1.3).sin(),
                1.0 + 2.5 * bounce * bounce.abs(),
                0.2 * (t * 0.7).cos(),
            ]
        })
        .collect();
    let before = ALLOCATIONS.load(Ordering::SeqCst);
    let mut judged = 0usize;
    for s in &samples {
        judged += usize::from(detector.push(*s).is_some());
    }
    let after = ALLOCATIONS.load(Ordering::SeqCst);
    assert_eq!(after, before, "the detector allocated while streaming");
    assert!(
        judged > 100,
        "jogging-like impacts should be judged: {judged}"
    );
}

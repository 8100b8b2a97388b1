//! The event ring buffer's reader: a `BPF_MAP_TYPE_RINGBUF` consumed through its mmap'd pages,
//! publishing the consumer position once per drain instead of once per record.
//!
//! Why not aya's `RingBuf`: it stores the consumer position after every record. The kernel's
//! `bpf_ringbuf_reserve` loads that position on every reserve, so a store per record makes its
//! cache line bounce between the reader's CPU and the observed server's CPU once per request;
//! measured on the 2-core test machine, the server's side of each response cost ~35 ns more
//! (cgroup_skb egress program, `bpf_stats`, nginx at ~100k requests/s). Publishing once per
//! drain (and every quarter ring within a long one, so that producers get room back) keeps the
//! line in the producer's cache between drains. The kernel programs pass `BPF_RB_NO_WAKEUP` or
//! `BPF_RB_FORCE_WAKEUP` on every submit, so the consumer position plays no part in wakeups:
//! publishing it late never loses one (it only delays the space it frees, by one drain).
//!
//! Layout (kernel/bpf/ringbuf.c, stable user ABI since Linux 5.8): page 0 holds the consumer
//! position (`unsigned long`, read-write for the reader); page 1 the producer position
//! (read-only); the data area (`max_entries` bytes, a power-of-two multiple of the page size)
//! follows, mapped twice in a row so that a record that wraps is still contiguous. A record is
//! an 8-byte header (`u32` length with bit 31 BUSY = still being written, bit 30 DISCARD =
//! dropped by its producer; `u32` page offset) and its bytes, padded to 8. Positions only grow;
//! the offset in the data area is the position masked by `max_entries - 1`.

use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};

use aya::maps::MapData;
use memmap2::{MmapOptions, MmapRaw};

use super::error::EbpfError;

const BUSY: u32 = 1 << 31;
const DISCARD: u32 = 1 << 30;
const HEADER_BYTES: usize = 8;

/// The reader of one ring buffer map. Owns the map's fd (for epoll: readable when the kernel
/// wakes the reader) and the two mappings.
pub(crate) struct EventRing {
    consumer: MmapRaw,
    producer: MmapRaw,
    page: usize,
    size: usize,
    /// The consumer position as last read or advanced here (the kernel never writes it).
    pos: usize,
    /// Declared last: the mappings are unmapped before the fd closes.
    map: MapData,
}

impl EventRing {
    /// Maps the ring buffer `map` (a `BPF_MAP_TYPE_RINGBUF`).
    ///
    /// # Errors
    /// [`EbpfError::Map`] when the map's size cannot be read, is not a power-of-two multiple of
    /// the page size, or a mapping fails.
    pub(crate) fn new(map: MapData) -> Result<Self, EbpfError> {
        let err = |reason: String| EbpfError::Map { map: ebpf::maps::EVENTS, reason };
        let size = map.info().map_err(|e| err(e.to_string()))?.max_entries() as usize;
        // SAFETY: sysconf has no memory-safety preconditions.
        let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).map_err(|_| err("page size".into()))?;
        if page == 0 || !size.is_power_of_two() || !size.is_multiple_of(page) {
            return Err(err(format!("ring buffer of {size} bytes is not a power-of-two number of pages")));
        }
        let fd: RawFd = map.fd().as_fd().as_raw_fd();
        let consumer = MmapOptions::new().len(page).map_raw(fd).map_err(|e| err(format!("mmap consumer page: {e}")))?;
        let producer = MmapOptions::new()
            .offset(page as u64)
            .len(page + 2 * size)
            .map_raw_read_only(fd)
            .map_err(|e| err(format!("mmap producer pages: {e}")))?;
        let mut ring = EventRing { consumer, producer, page, size, pos: 0, map };
        ring.pos = ring.consumer_pos().load(Ordering::Acquire);
        Ok(ring)
    }

    fn consumer_pos(&self) -> &AtomicUsize {
        // SAFETY: the consumer page is mapped read-write for the ring's lifetime, page-aligned
        // (so aligned for usize), and the kernel only reads this word; AtomicUsize has usize's
        // layout.
        unsafe { &*self.consumer.as_ptr().cast::<AtomicUsize>() }
    }

    fn producer_pos(&self) -> usize {
        // SAFETY: the first word of the producer mapping is the kernel's producer position,
        // page-aligned, mapped for the ring's lifetime; read atomically, as the kernel stores it
        // with release semantics.
        unsafe { &*self.producer.as_ptr().cast::<AtomicUsize>() }.load(Ordering::Acquire)
    }

    /// The record header at position `pos`.
    fn header(&self, pos: usize) -> u32 {
        let off = self.page + (pos & (self.size - 1));
        // SAFETY: off + 8 <= page + size <= the mapping's length; 8-byte aligned (positions
        // advance in multiples of 8, the data area is page-aligned); the kernel commits a record
        // by an atomic store to this word.
        unsafe { &*self.producer.as_ptr().add(off).cast::<AtomicU32>() }.load(Ordering::Acquire)
    }

    /// Calls `f` with every committed record's bytes, in order, stopping at a record still being
    /// written; returns how many records `f` saw. The consumer position is published at the end
    /// (and after each quarter of the ring within a long drain).
    pub(crate) fn drain(&mut self, mut f: impl FnMut(&[u8])) -> usize {
        let mut seen = 0;
        let mut published = self.pos;
        let mut end = self.producer_pos();
        loop {
            if self.pos == end {
                end = self.producer_pos();
                if self.pos == end {
                    break;
                }
            }
            let hdr = self.header(self.pos);
            if hdr & BUSY != 0 {
                break;
            }
            let len = (hdr & !(BUSY | DISCARD)) as usize;
            if len > self.size - HEADER_BYTES {
                // Not a record the kernel writes; stop rather than read past it.
                tracing::error!(len, pos = self.pos, "eBPF ring buffer: record longer than the ring");
                break;
            }
            if hdr & DISCARD == 0 {
                let start = self.page + (self.pos & (self.size - 1)) + HEADER_BYTES;
                // SAFETY: start + len <= page + 2 * size (the data area is mapped twice in a
                // row); the record is committed (BUSY clear, read with Acquire), and the kernel
                // does not reuse its bytes until the consumer position passes them, which
                // happens only after `f` returns.
                let bytes = unsafe { std::slice::from_raw_parts(self.producer.as_ptr().add(start), len) };
                f(bytes);
                seen += 1;
            }
            self.pos = self.pos.wrapping_add((HEADER_BYTES + len).next_multiple_of(8));
            if self.pos.wrapping_sub(published) >= self.size / 4 {
                self.consumer_pos().store(self.pos, Ordering::Release);
                published = self.pos;
            }
        }
        if published != self.pos {
            self.consumer_pos().store(self.pos, Ordering::Release);
        }
        seen
    }
}

impl AsRawFd for EventRing {
    fn as_raw_fd(&self) -> RawFd {
        self.map.fd().as_fd().as_raw_fd()
    }
}

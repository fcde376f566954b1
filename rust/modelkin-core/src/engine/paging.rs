//! Paging hints of a run: the pages of a work item are asked for before it is read and handed back,
//! in batches, once it has been read, so resident memory does not grow with the model.

use crate::checkpoint::MappedFile;
use crate::tensor::Source;

/// Ranges of mapped files that a worker has finished reading, handed back to the kernel in batches
/// (and when dropped). Each hand-back makes the kernel interrupt the other cores running this
/// process to flush their address translations, which in a virtual machine costs an exit per core:
/// per 2 MB work item it took about a tenth of a 2-thread run.
#[derive(Default)]
pub(super) struct Releases<'a> {
    pending: Vec<(&'a MappedFile, u64, u64)>,
}

impl<'a> Releases<'a> {
    /// Bytes kept mapped per worker at most before a hand-back.
    const BATCH: u64 = 64 << 20;
    /// Separate ranges kept at most.
    const RANGES: usize = 16;

    #[inline]
    fn add(&mut self, file: &'a MappedFile, start: u64, len: u64) {
        let end = start + len;
        let joined = self
            .pending
            .iter_mut()
            .find(|(f, s, e)| std::ptr::eq(*f, file) && (*e == start || end == *s));
        match joined {
            Some((_, s, e)) => (*s, *e) = ((*s).min(start), (*e).max(end)),
            None => self.pending.push((file, start, end)),
        }
        let bytes: u64 = self.pending.iter().map(|(_, s, e)| e - s).sum();
        if bytes >= Self::BATCH || self.pending.len() > Self::RANGES {
            self.flush();
        }
    }

    fn flush(&mut self) {
        for (file, start, end) in self.pending.drain(..) {
            file.release(start, end - start);
        }
    }
}

impl Drop for Releases<'_> {
    fn drop(&mut self) {
        self.flush();
    }
}

impl<'a> Releases<'a> {
    /// Hands back the pages of logical elements `[start, start + len)` of `src` (in a batch).
    #[inline]
    pub(super) fn release(&mut self, src: &Source<'a>, start: u64, len: u64) {
        if let (Some(r), Some((file, off))) = (src.span(start, len), src.file) {
            self.add(file, off + r.start as u64, r.len() as u64);
        }
    }
}

/// Asks for the pages of logical elements `[start, start + len)` of `src` before they are read.
#[inline]
pub(super) fn prefault(src: &Source, start: u64, len: u64) {
    if let (Some(r), Some((file, off))) = (src.span(start, len), src.file) {
        file.prefault(off + r.start as u64, r.len() as u64);
    }
}

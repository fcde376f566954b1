//! The restricted pickle reader on arbitrary bytes: a state dict of tensor descriptors or an
//! error; never a panic, and (being an interpreter of data only) never anything executed.
#![no_main]

use libfuzzer_sys::fuzz_target;
use modelkin_core::format::pickle::load;

fuzz_target!(|data: &[u8]| {
    let _ = load(data);
});

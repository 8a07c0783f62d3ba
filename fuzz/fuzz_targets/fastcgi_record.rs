//! Any byte stream, fed to the FastCGI record decoder in pieces of any size, decodes into
//! records that re-encode to themselves, or into a decode error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&step, stream)) = data.split_first() else {
        return;
    };
    towergate::fastcgi::fuzz::records(stream, usize::from(step));
});

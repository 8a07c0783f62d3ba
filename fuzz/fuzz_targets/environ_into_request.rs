//! Any environment (NUL-separated `KEY=value` entries, any bytes) converts to a request or
//! a clean error, never a panic, and a request's URI is always in origin form.
#![no_main]

use libfuzzer_sys::fuzz_target;
use towergate::Environ;

fuzz_target!(|data: &[u8]| {
    let environ = Environ::from_vars(data.split(|&b| b == 0).filter_map(|entry| {
        let eq = entry.iter().position(|&b| b == b'=')?;
        Some((entry[..eq].to_vec(), entry[eq + 1..].to_vec()))
    }));
    if let Ok(request) = environ.into_request() {
        assert!(request.uri().path().starts_with('/'));
        assert!(request.uri().scheme().is_none());
    }
});

//! request → environ → request never panics, and keeps the method and the query.
#![no_main]

use libfuzzer_sys::fuzz_target;
use towergate::environ::EnvironBuilder;

fuzz_target!(|data: &[u8]| {
    let mut lines = data.split(|&b| b == b'\n');
    let Some(target) = lines.next() else { return };
    let Ok(uri) = http::Uri::try_from(target) else { return };
    let mut request = http::Request::new(());
    *request.uri_mut() = uri;
    for line in lines {
        let Some(colon) = line.iter().position(|&b| b == b':') else { continue };
        let (Ok(name), Ok(value)) = (
            http::HeaderName::from_bytes(&line[..colon]),
            http::HeaderValue::from_bytes(&line[colon + 1..]),
        ) else {
            continue;
        };
        request.headers_mut().append(name, value);
    }
    let environ = EnvironBuilder::new().script_name("/app").build(&request);
    let back = environ.into_request().expect("a built environ is a valid request");
    assert_eq!(back.method(), request.method());
    assert_eq!(back.uri().query().is_some(), request.uri().query().is_some_and(|q| !q.is_empty()));
});

//! The `--addr HOST:PORT` argument of the example servers (`demo`, `native_axum`).

use std::net::SocketAddr;

/// The address from `--addr HOST:PORT` (or `--addr=HOST:PORT`) on the command line, else
/// `default`; `name` is the example's name, for the usage line.
pub(crate) fn from_args(name: &str, default: &str) -> Result<SocketAddr, String> {
    let mut args = std::env::args().skip(1);
    let mut addr = default.to_owned();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--addr" => addr = args.next().ok_or("--addr needs HOST:PORT")?,
            other => match other.strip_prefix("--addr=") {
                Some(value) => addr = value.to_owned(),
                None => {
                    return Err(format!(
                        "unknown argument {other:?} (usage: {name} [--addr HOST:PORT])"
                    ));
                }
            },
        }
    }
    addr.parse()
        .map_err(|e| format!("bad address {addr:?}: {e}"))
}

use std::fmt;

use crate::BoxError;

/// Why serving a CGI request failed.
///
/// Each failure has been logged when this is returned; [`Builder::run`](super::Builder::run)
/// turns it into exit status 1.
#[derive(Debug)]
pub struct Error {
    kind: Kind,
    source: Option<BoxError>,
}

#[derive(Debug)]
enum Kind {
    NotCgi,
    Body,
    Io,
}

impl Error {
    pub(crate) fn not_cgi() -> Self {
        Error {
            kind: Kind::NotCgi,
            source: None,
        }
    }

    pub(crate) fn body(source: BoxError) -> Self {
        Error {
            kind: Kind::Body,
            source: Some(source),
        }
    }

    pub(crate) fn io(source: std::io::Error) -> Self {
        Error {
            kind: Kind::Io,
            source: Some(source.into()),
        }
    }

    /// Returns true when the environment has no `REQUEST_METHOD`: the program was not run
    /// by a web server, and nothing was written.
    pub fn is_not_cgi(&self) -> bool {
        matches!(self.kind, Kind::NotCgi)
    }

    /// Returns true when the response body failed (or panicked) after the head was written:
    /// the output was cut short.
    pub fn is_body(&self) -> bool {
        matches!(self.kind, Kind::Body)
    }

    /// Returns true when writing standard output failed, usually because the web server
    /// closed it (the client went away).
    pub fn is_io(&self) -> bool {
        matches!(self.kind, Kind::Io)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            Kind::NotCgi => {
                f.write_str("no REQUEST_METHOD in the environment: not run as a CGI program")
            }
            Kind::Body => f.write_str("the response body failed after the head was written"),
            Kind::Io => f.write_str("writing the response failed"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_deref().map(|e| e as _)
    }
}

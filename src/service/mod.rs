//! The bridges between gateway apps and tower: [`AppService`] (an app as a tower service, for
//! hyper) and [`ServiceApp`] (a tower service as an app).

mod app_service;
mod service_app;

pub use app_service::{AppService, ResponseBody, ResponseFuture};
pub use service_app::{ServiceApp, ServiceAppBody};

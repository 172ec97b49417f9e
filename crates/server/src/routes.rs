//! Every route of the server, in one place.

use axum::Router;

use crate::app::App;

pub fn router(app: App) -> Router {
    Router::new().with_state(app)
}

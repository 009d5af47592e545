//! The one mapping from failures to HTTP. Policy: a client error says what was wrong in
//! RFC-shaped terms; a server error says nothing about its cause (the cause is logged here,
//! once, with its chain). Storage that is unreachable is 503 `temporarily_unavailable`
//! with `Retry-After`, never a decision in the caller's favour (SECURITY.md §2 (3)).

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde_json::json;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The database (or another dependency) cannot be reached right now.
    #[error("service unavailable: {0}")]
    Unavailable(String),
    /// A bug or an unexpected state.
    #[error("internal error: {0}")]
    Internal(String),
}

impl AppError {
    pub fn from_db(e: &diesel::result::Error) -> Self {
        if crate::db::is_unavailable(e) {
            Self::Unavailable(e.to_string())
        } else {
            Self::Internal(e.to_string())
        }
    }
}

impl From<diesel::result::Error> for AppError {
    fn from(e: diesel::result::Error) -> Self {
        Self::from_db(&e)
    }
}

impl From<crate::tokens::keys::KeyError> for AppError {
    fn from(e: crate::tokens::keys::KeyError) -> Self {
        match e {
            crate::tokens::keys::KeyError::Db(db) => Self::from_db(&db),
            other => Self::Internal(other.to_string()),
        }
    }
}

impl ResponseError for AppError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            Self::Unavailable(cause) => {
                tracing::error!(%cause, "dependency unavailable");
                HttpResponse::ServiceUnavailable()
                    .insert_header(("Retry-After", "1"))
                    .insert_header(("Cache-Control", "no-store"))
                    .json(json!({"error": "temporarily_unavailable",
                                 "error_description": "The service is temporarily unavailable. Retry shortly."}))
            }
            Self::Internal(cause) => {
                tracing::error!(%cause, "internal error");
                HttpResponse::InternalServerError()
                    .insert_header(("Cache-Control", "no-store"))
                    .json(json!({"error": "server_error"}))
            }
        }
    }
}

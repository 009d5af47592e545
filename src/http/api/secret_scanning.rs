//! `POST /api/v1/secret-scanning/verify` (docs/spec.md §10): GitHub's secret-scanning
//! partner reports. The signature (`Github-Public-Key-Identifier`,
//! `Github-Public-Key-Signature`: ECDSA P-256 SHA-256 over the raw body, base64 DER) is
//! checked against `--secret-scanning-keys` before the body is parsed; then
//! `secret_scanning::report` judges each token.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};

use super::openapi::{InvalidRequest, TooLarge};
use super::{ApiError, json_body, json_response};
use crate::app::AppState;
use crate::http::errors::ErrorBody;
use crate::http::with_db;
use crate::secret_scanning::{self, Match, Verdict};

/// The header naming the signing key.
pub const KEY_IDENTIFIER: &str = "Github-Public-Key-Identifier";
/// The header carrying the base64 DER signature.
pub const SIGNATURE: &str = "Github-Public-Key-Signature";

/// What the endpoint answers besides its verdicts.
#[derive(utoipa::IntoResponses)]
pub enum ScanErrors {
    /// The signature headers are missing, name an unknown key, or do not verify (or no
    /// key file is configured).
    #[response(status = 401)]
    Unauthorized(ErrorBody),
    /// The database cannot be reached.
    #[response(status = 503, headers(("Retry-After" = i64)))]
    Unavailable(ErrorBody),
}

/// `POST /api/v1/secret-scanning/verify` `[{"token", "type", "url", "source"}]`, signed
/// by GitHub → 200 `[{"token_raw", "token_type", "label"}]`; 401 for a bad or missing
/// signature, 400 for a malformed body.
#[utoipa::path(
    post,
    path = "/api/v1/secret-scanning/verify",
    operation_id = "reportLeakedTokens",
    tag = "secret scanning",
    summary = "Receive a secret-scanning report; revoke leaked live keys",
    security(("githubSignature" = [])),
    params(
        ("Github-Public-Key-Identifier" = String, Header, description = "The `key_identifier` of the signing key"),
        ("Github-Public-Key-Signature" = String, Header, description = "Base64 of the DER ECDSA P-256 SHA-256 signature of the raw body")
    ),
    request_body = Vec<Match>,
    responses(
        (status = 200, description = "One verdict per token, in order", body = Vec<Verdict>),
        InvalidRequest, ScanErrors, TooLarge
    )
)]
pub async fn verify_post(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
    if let Err(e) =
        state
            .settings
            .secret_scanning
            .verify(header(KEY_IDENTIFIER), header(SIGNATURE), &body)
    {
        tracing::warn!(reason = %e, "secret scanning: report refused");
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "authentication_error",
            e.to_string(),
        ));
    }
    let matches: Vec<Match> = json_body(&req, &body)?;
    if let Some(verdicts) =
        secret_scanning::offline(&matches, &state.settings.key_prefix).map_err(ApiError::from)?
    {
        return Ok(json_response(StatusCode::OK, None, verdicts));
    }
    let st = state.clone();
    let verdicts = with_db(&state, move |conn| {
        secret_scanning::report(conn, &st.ctx(), &matches)
    })
    .await?;
    Ok(json_response(StatusCode::OK, None, verdicts))
}

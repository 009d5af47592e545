//! `POST /account/name`: the display name released as the OpenID Connect `name` claim with
//! the `profile` scope (docs/spec.md §9).

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};

use super::signed_in::CsrfForm;
use super::{current_session, error_page, see_other};
use crate::app::AppState;
use crate::error::AppError;
use crate::http::with_db;
use crate::oidc::claims;

/// Sets the signed-in user's display name from the form's `name` (empty clears it); a name
/// over 100 characters or with a control character is a 400 page naming the field.
pub async fn name_post(
    req: HttpRequest,
    CsrfForm(fields): CsrfForm,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let Some(session) = current_session(&req, &state).await? else {
        return Ok(super::signed_in::forbidden_form());
    };
    let name = match claims::validate_name(fields.get("name").unwrap_or("")) {
        Ok(n) => n,
        Err(msg) => {
            return Ok(error_page(
                StatusCode::BAD_REQUEST,
                "Bad display name",
                &format!("{msg} Go back, correct it and send it again."),
            ));
        }
    };
    let user_id = session.user_id.clone();
    with_db(&state, move |conn| {
        claims::set_name(conn, &user_id, name.as_deref()).map_err(AppError::from_db)
    })
    .await?;
    Ok(see_other("/account?done=name"))
}

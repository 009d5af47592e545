//! The shared frame of every signed-in page (templates/settings_nav.html, docs/spec.md §6):
//! the sections, who is signed in, the current organization and a switcher to the user's
//! other organizations (`POST /settings/org`), and sign out.

use actix_web::web;

use super::signed_in::SignedIn;
use crate::app::AppState;
use crate::error::AppError;
use crate::http::with_db;
use crate::sessions::Session;

/// What the top bar shows. `here` is the path of the page (it marks the current section
/// and is where the organization switcher comes back to).
pub struct Nav {
    pub email: String,
    /// The current organization's id and name; empty when the user belongs to none.
    pub org_id: String,
    pub org_name: String,
    /// Every organization of the user: (id, name), oldest membership first.
    pub orgs: Vec<(String, String)>,
    /// CSRF tokens of the switcher (`/settings/org`) and of sign out.
    pub csrf_org: String,
    pub csrf_logout: String,
    pub here: String,
    /// The user's role in the current organization; `None` without one.
    pub role: Option<crate::orgs::Role>,
}

impl Nav {
    /// Whether `section` (a path prefix such as `/settings/api-keys`) is the page shown.
    pub fn is(&self, section: &str) -> bool {
        if section == "/" {
            self.here == "/"
        } else {
            self.here.starts_with(section)
        }
    }
}

impl SignedIn {
    /// The top bar of a page at path `here`, for this viewer.
    pub fn nav(&self, here: &str) -> Nav {
        Nav {
            email: self.email.clone(),
            org_id: self.actor.org_id.clone(),
            org_name: self.org_name.clone(),
            orgs: self.orgs.clone(),
            csrf_org: self.csrf("/settings/org"),
            csrf_logout: self.session.csrf_token("logout"),
            here: here.to_string(),
            role: Some(self.actor.role),
        }
    }
}

/// The top bar for a page that needs a session but no organization (home, `/account`,
/// `/account/apps`, `/invitations`): read from the database.
pub async fn nav_for(
    state: &web::Data<AppState>,
    session: &Session,
    here: &str,
) -> Result<Nav, AppError> {
    let user = session.user_id.clone();
    let (email, orgs) = with_db(state, move |conn| -> Result<_, AppError> {
        let email = crate::users::store::find(conn, &user)?
            .map(|u| u.email)
            .unwrap_or_default();
        Ok((email, crate::orgs::store::memberships_of(conn, &user)?))
    })
    .await?;
    let current = orgs
        .iter()
        .find(|(id, _, _)| Some(id) == session.org_id.as_ref())
        .or(orgs.first());
    let role = current.map(|(_, _, role)| *role);
    let (org_id, org_name) = current
        .map(|(id, name, _)| (id.clone(), name.clone()))
        .unwrap_or_default();
    Ok(Nav {
        email,
        org_id,
        org_name,
        orgs: orgs.into_iter().map(|(id, name, _)| (id, name)).collect(),
        csrf_org: session.csrf_token("/settings/org"),
        csrf_logout: session.csrf_token("logout"),
        here: here.to_string(),
        role,
    })
}

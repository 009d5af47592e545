//! The pages as a browser without JavaScript uses them (a signed-in browser is
//! `TestApp::user`): page GETs and form posts with the page's CSRF token.

use super::{TestApp, hidden};

impl TestApp {
    /// The organization of a user who has exactly one.
    pub fn org_of(&self, email: &str) -> String {
        let mut conn = self.state.pool.get().expect("conn");
        let user = tessera::users::store::find_by_email(&mut conn, email)
            .expect("query")
            .expect("user");
        tessera::orgs::store::orgs_of(&mut conn, &user.id).expect("orgs")[0].clone()
    }

    /// `GET path` with `b`: status and body.
    pub async fn page(&self, b: &reqwest::Client, path: &str) -> (u16, String) {
        let r = b
            .get(format!("{}{path}", self.address))
            .send()
            .await
            .expect("get");
        (r.status().as_u16(), r.text().await.expect("html"))
    }

    /// Posts `form` to `path` with `b`.
    pub async fn post_page(
        &self,
        b: &reqwest::Client,
        path: &str,
        form: &[(&str, &str)],
    ) -> reqwest::Response {
        b.post(format!("{}{path}", self.address))
            .header("Origin", &self.address)
            .form(form)
            .send()
            .await
            .expect("post")
    }

    /// Loads `page_path`, takes the `csrf_token` of its form that posts to `action` (the
    /// page's first one when no form names it), and posts `form` with it to `action`.
    pub async fn submit(
        &self,
        b: &reqwest::Client,
        page_path: &str,
        action: &str,
        form: &[(&str, &str)],
    ) -> reqwest::Response {
        let (_, html) = self.page(b, page_path).await;
        let at = html.find(&format!("action=\"{action}\"")).unwrap_or(0);
        let csrf = hidden(&html[at..], "csrf_token");
        let mut full = vec![("csrf_token", csrf.as_str())];
        full.extend_from_slice(form);
        self.post_page(b, action, &full).await
    }

    /// A form post's 303 answered by a GET of its `Location` with `b` (post/redirect/get):
    /// the location, and the status, `Cache-Control` and body of the page.
    pub async fn follow(
        &self,
        b: &reqwest::Client,
        r: reqwest::Response,
    ) -> (String, u16, String, String) {
        assert_eq!(r.status(), 303, "post/redirect/get");
        let location = r.headers()["location"].to_str().expect("ascii").to_string();
        let page = b
            .get(format!("{}{location}", self.address))
            .send()
            .await
            .expect("get");
        let status = page.status().as_u16();
        let cache = page
            .headers()
            .get("cache-control")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        (location, status, cache, page.text().await.expect("html"))
    }
}

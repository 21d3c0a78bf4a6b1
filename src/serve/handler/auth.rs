//! Basic authentication in the request path: checked before any file is looked
//! up. The [`BasicAuth`] is passed in rather than read from the site, so that a
//! more specific owner (a location) can supply its own.

use crate::config::auth::BasicAuth;
use crate::config::site::Site;
use crate::http::request::Head;
use crate::http::Status;
use crate::serve::reply::{Frame, Plan};

use super::{Context, Handler};

impl<C: Context> Handler<C> {
    /// `None` when the request's credentials are right for `auth` (its user is kept
    /// for the access log), else the `401` with the realm's challenge.
    pub(super) fn authorize(
        &mut self,
        site: &Site,
        auth: &BasicAuth,
        h: &Head<'_>,
        frame: Frame,
    ) -> Option<Plan> {
        match auth.check(h.authorization) {
            Ok(user) => {
                self.user.push_str(user);
                None
            }
            Err(_) => {
                let challenge = Some((&b"WWW-Authenticate"[..], auth.challenge()));
                Some(self.error(site, Status::Unauthorized, frame, challenge))
            }
        }
    }
}

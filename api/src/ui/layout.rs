//! The frame every console page shares: the document head, the navigation,
//! who is signed in, and a refresh while something on the page is moving.

use super::session::Operator;
use maud::{DOCTYPE, Markup, html};

/// Seconds between reloads of a page that shows an active run.
const REFRESH_SECS: u32 = 3;

/// A whole page titled `title` around `body`. `live`: something on the page
/// is still changing, so the browser reloads it every few seconds.
pub fn page(title: &str, operator: Option<&Operator>, live: bool, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                @if live { meta http-equiv="refresh" content=(REFRESH_SECS); }
                title { (title) " · Retrain" }
                link rel="stylesheet" href="/ui/console.css";
            }
            body {
                header.top {
                    a.brand href="/ui/runs" { "Retrain" }
                    nav {
                        a href="/ui/runs" { "Runs" }
                        a href="/ui/models" { "Models" }
                        a href="/docs" { "API" }
                    }
                    div.who {
                        @match operator {
                            Some(operator) => {
                                span { "Signed in as " strong { (operator.actor) } }
                                form.inline method="post" action="/ui/logout" {
                                    (csrf_field(operator))
                                    button.link type="submit" { "Sign out" }
                                }
                            }
                            None => { span.muted { "Read-only" } " " a href="/ui/login" { "Sign in" } }
                        }
                    }
                }
                main {
                    (body)
                    @if live { p.muted.live { "Updating every " (REFRESH_SECS) " s while a run is active." } }
                }
            }
        }
    }
}

/// The hidden CSRF field every action form carries.
pub fn csrf_field(operator: &Operator) -> Markup {
    html! { input type="hidden" name="csrf" value=(operator.csrf); }
}

/// A status as a coloured badge (`status-<name>` in the stylesheet).
pub fn badge(status: &str) -> Markup {
    html! { span class={ "badge status-" (status) } { (status) } }
}

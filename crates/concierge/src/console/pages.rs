//! The console's HTML, server-rendered with maud: every value inserted is escaped, so a
//! CRM name `<script>…` shows as text. The pages' live parts are fragments of the same
//! templates, sent again over Server-Sent Events (`live.rs`) and swapped in by
//! `assets/console.js`; the browser never builds markup from data itself.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use concierge_flow::diagram;
use maud::{html, Markup, DOCTYPE};

use super::card::{Card, Source};
use super::hub::{ConsoleView, Filter};

/// The outcomes a record can have, for the filter.
const OUTCOMES: [&str; 4] = ["transferred", "hung_up", "failed", "refused"];

/// A whole page: the common head, the stylesheet and script, `body` inside.
fn layout(title: &str, page: &str, csrf: Option<&str>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                @if let Some(csrf) = csrf { meta name="csrf" content=(csrf); }
                title { (title) " · Concierge" }
                link rel="stylesheet" href="/assets/console.css";
                // Ours first: the buttons work before Mermaid (3.5 MB) has loaded.
                script src="/assets/console.js" defer {}
                @if page == "console" {
                    script src=(super::assets::MERMAID_PATH) defer {}
                }
            }
            body data-page=(page) {
                header {
                    strong { "Concierge" }
                    nav { a href="/" { "Console" } " " a href="/widget" { "Call widget" } }
                }
                main { (body) }
            }
        }
    }
}

/// The live console: calls in progress, the flow with its counts, today's outcomes,
/// recent calls with filters, status sections and the reload button.
pub(crate) fn console_page(
    view: &ConsoleView,
    flow: Option<&str>,
    filter: &Filter,
    csrf: &str,
) -> Markup {
    let selected = selected_flow(view, flow);
    let body = html! {
        section #live-section {
            h2 { "Calls in progress" }
            div #live { (live_table(view)) }
        }
        section #flow-section {
            h2 { "Flow" }
            nav.flows {
                @for (route, f) in &view.flows {
                    a href={ "/?flow=" (f.name) } .current[Some(f.name.as_str()) == selected.map(|s| s.name.as_str())] {
                        (f.name)
                        @if !route.is_empty() { " (" (route) ")" }
                    }
                    " "
                }
            }
            div.flow {
                pre #diagram-source hidden { (diagram_source(view, selected)) }
                div #diagram { }
                div #counts { (counts_table(view, selected)) }
            }
        }
        section #today-section {
            h2 { "Today (UTC)" }
            div #today { (today_table(view)) }
        }
        section #records-section {
            h2 { "Recent calls" }
            form.filters method="get" action="/" {
                @if let Some(f) = selected { input type="hidden" name="flow" value=(f.name); }
                label { "Outcome " select name="outcome" {
                    option value="" { "any" }
                    @for o in OUTCOMES {
                        option value=(o) selected[filter.outcome.as_deref() == Some(o)] { (o) }
                    }
                } }
                label { " VIP " select name="vip" {
                    option value="" { "any" }
                    option value="yes" selected[filter.vip.as_deref() == Some("yes")] { "yes" }
                    option value="no" selected[filter.vip.as_deref() == Some("no")] { "no" }
                } }
                label { " Transferred to " input name="to" size="14" value=(filter.to.clone().unwrap_or_default()); }
                " " button type="submit" { "Filter" }
            }
            div #records { (records_table(view)) }
        }
        div #status { (status_sections(view)) }
        section #reload-section {
            h2 { "Flows" }
            p { "Reload re-reads the config, flows, prompts and directory, checks them as "
                code { "concierge check" } " does, and installs them only when they pass." }
            button #reload type="button" { "Reload flows" }
            div #reload-result role="status" { }
        }
    };
    layout("Console", "console", Some(csrf), body)
}

/// The flow the console draws: the one asked for, else the default (the first).
pub(crate) fn selected_flow<'a>(
    view: &'a ConsoleView,
    name: Option<&str>,
) -> Option<&'a std::sync::Arc<concierge_flow::Flow>> {
    name.and_then(|n| view.flows.iter().find(|(_, f)| f.name == n))
        .or(view.flows.first())
        .map(|(_, f)| f)
}

/// The Mermaid source of the selected flow, each node with its counts.
pub(crate) fn diagram_source(
    view: &ConsoleView,
    flow: Option<&std::sync::Arc<concierge_flow::Flow>>,
) -> String {
    let Some(flow) = flow else {
        return String::new();
    };
    diagram::mermaid_annotated(flow, &|node| {
        let key = (flow.name.clone(), node.to_owned());
        let now = view.here.get(&key).copied().unwrap_or(0);
        let today = view.today.nodes.get(&key).copied().unwrap_or(0);
        Some(format!("now {now} · today {today}"))
    })
}

/// Calls in progress (known from the switch's call events).
pub(crate) fn live_table(view: &ConsoleView) -> Markup {
    html! {
        @if view.live.is_empty() {
            p.empty { "No call in progress." }
        } @else {
            table {
                thead { tr { th { "Caller" } th { "Flow" } th { "Node" } th { "In call" } th { "Transport" } th { "SRTP" } } }
                tbody {
                    @for c in &view.live {
                        tr {
                            td { (caller(c.caller.as_deref())) @if c.verified { " ✓" } }
                            td { (c.flow.as_deref().unwrap_or("—")) }
                            td { (c.node.as_deref().unwrap_or("—")) }
                            td { (duration(c.arrived.elapsed().as_millis() as u64)) }
                            td { (format!("{:?}", c.transport).to_uppercase()) }
                            td { @if c.srtp { "yes" } @else { "no" } }
                        }
                    }
                }
            }
            @if view.live_total > view.live.len() {
                p.empty { (view.live_total - view.live.len()) " more not shown." }
            }
        }
    }
}

/// Each node of the selected flow with its calls now there and today.
pub(crate) fn counts_table(
    view: &ConsoleView,
    flow: Option<&std::sync::Arc<concierge_flow::Flow>>,
) -> Markup {
    html! {
        @if let Some(flow) = flow {
            table.counts data-flow=(flow.name) {
                thead { tr { th { "Node" } th { "Now" } th { "Today" } } }
                tbody {
                    @for node in flow.nodes.keys().map(String::as_str).chain(["transferred"]) {
                        @let key = (flow.name.clone(), node.to_owned());
                        tr data-node=(node) {
                            td { (node) }
                            td.now { (view.here.get(&key).copied().unwrap_or(0)) }
                            td.today { (view.today.nodes.get(&key).copied().unwrap_or(0)) }
                        }
                    }
                }
            }
        } @else {
            p.empty { "No flow: calls are answered and held." }
        }
    }
}

/// Today's calls by outcome.
pub(crate) fn today_table(view: &ConsoleView) -> Markup {
    html! {
        table.today {
            tbody {
                tr { th { "calls" } td #calls-today { (view.today.calls) } }
                @for o in OUTCOMES {
                    tr { th { (o) } td data-outcome=(o) { (view.today.outcomes.get(o).copied().unwrap_or(0)) } }
                }
            }
        }
    }
}

/// The recent calls the filter admits, newest first.
pub(crate) fn records_table(view: &ConsoleView) -> Markup {
    html! {
        @if view.rows.is_empty() {
            p.empty { "No call yet." }
        } @else {
            table.records {
                thead { tr { th { "Ended (UTC)" } th { "Caller" } th { "Flow" } th { "Outcome" } th { "VIP" } th { "Transferred to" } th { "Duration" } th { "Path" } } }
                tbody {
                    @for r in &view.rows {
                        tr data-call=(r.call_id) {
                            td { (clock(r.ended_ms)) }
                            td { (caller(r.caller.as_deref())) }
                            td { (r.flow) }
                            td.outcome { (r.outcome) }
                            td { @if let Some(how) = r.recognised { "yes (" (how.as_str()) ")" } @else { "no" } }
                            td { (r.desk.as_deref().unwrap_or("—")) }
                            td { (duration(r.duration_ms)) }
                            td.path { (r.path) }
                        }
                    }
                }
            }
        }
    }
}

/// The status sections (`Shared state`, `Trunks`, …), each as reported to the hub.
pub(crate) fn status_sections(view: &ConsoleView) -> Markup {
    html! {
        @for (section, lines) in &view.status {
            section.status data-section=(section) {
                h2 { (section) }
                @if lines.is_empty() {
                    p.empty { "Not configured." }
                } @else {
                    ul { @for l in lines { li.ok[l.ok].bad[!l.ok] { (l.name) ": " (l.state) } } }
                }
            }
        }
    }
}

/// The call widget: the desk's card, live (`desk` is what the page follows).
pub(crate) fn widget_page(card: Option<&Card>, desk: Option<&str>, live: bool) -> Markup {
    let body = html! {
        h1 {
            "Call widget"
            @if let Some(d) = desk { " · " (d) }
        }
        div #card data-live=[live.then_some("true")] data-desk=[desk] {
            (card_fragment(card))
        }
    };
    layout("Call widget", "widget", None, body)
}

/// One card (or the wait for the first).
pub(crate) fn card_fragment(card: Option<&Card>) -> Markup {
    let Some(c) = card else {
        return html! { p.empty { "No call has reached this desk yet. The card appears here when one does." } };
    };
    html! {
        article.card.vip[c.is_vip()] data-call=(c.call_id) {
            h2.name { (c.name.as_deref().unwrap_or("Unknown caller")) }
            dl {
                dt { "Caller" } dd.caller { (caller(c.caller.as_deref())) @if c.verified { " (verified)" } }
                dt { "Tier" } dd.tier { (c.tier.as_deref().unwrap_or("—")) }
                dt { "VIP" } dd.vip {
                    @match c.recognised {
                        Some(how) => { "yes, by " (how.as_str()) }
                        None => { @if c.source == Source::Token { "—" } @else { "no" } }
                    }
                }
                dt { "Customer ID" } dd.customer-id { (c.customer_id.as_deref().unwrap_or("—")) }
                @if let Some(w) = c.waited_ms { dt { "Waited" } dd.waited { (duration(w)) } }
                @if !c.desk.is_empty() { dt { "Desk" } dd { (c.desk) } }
                @if let Some(m) = &c.mode { dt { "Transfer" } dd { (m) @if let Some(t) = c.transferred_ms { " at " (clock(t)) " UTC" } } }
                @if c.source != Source::Token {
                    dt { "Result" }
                    dd.result { @match &c.result { Some(r) => (r), None => "under way…" } }
                }
            }
            @if !c.widget.is_empty() {
                h3 { "From the flow" }
                table.widget { tbody { @for (n, v) in &c.widget { tr { th { (n) } td { (v) } } } } }
            }
            @if !c.path.is_empty() {
                h3 { "Path" }
                ol.path { @for s in &c.path { li { (s) } } }
            }
            p.source {
                @match c.source {
                    Source::Record => "From the call's record.",
                    Source::Event if c.result.is_none() => "Live: the call is being transferred now.",
                    Source::Event => "Live: from the transfer as it happened.",
                    Source::Token => "From a verified transfer token.",
                }
                " Call-ID " code { (c.call_id) }
            }
        }
    }
}

/// A page that says what went wrong, with its status (`Content-Type` and the security
/// headers are added by the router's layers).
pub(crate) fn error_page(status: StatusCode, title: &str, message: &str) -> Response {
    let body = html! { section.error { h1 { (title) } p { (message) } } };
    let mut response = (status, layout(title, "error", None, body).into_string()).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    response
}

fn caller(number: Option<&str>) -> &str {
    number.unwrap_or("withheld")
}

/// `HH:MM:SS` (UTC) of a wall time in ms.
fn clock(ms: u64) -> String {
    let s = (ms / 1000) % 86_400;
    format!("{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

/// `850 ms`, `1.5 s`, `3 min 20 s`.
fn duration(ms: u64) -> String {
    match ms {
        0..1_000 => format!("{ms} ms"),
        1_000..60_000 => format!("{:.1} s", ms as f64 / 1000.0),
        _ => format!("{} min {} s", ms / 60_000, ms / 1000 % 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::console::card::tests::{vip_flow, vip_record};

    #[test]
    fn caller_controlled_text_is_escaped_everywhere_it_appears() {
        let record = vip_record("<b>c1</b>", "<script>alert(1)</script>");
        let card = Card::from_record(&record, Some(&vip_flow())).unwrap();
        let page = widget_page(Some(&card), Some("vip-desk"), true).into_string();
        assert!(!page.contains("<script>alert"), "{page}");
        assert!(
            page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
            "{page}"
        );
        assert!(!page.contains("<b>c1"), "{page}");
    }

    #[test]
    fn times_and_durations_read_plainly() {
        assert_eq!(clock(3_723_000), "01:02:03");
        assert_eq!(duration(850), "850 ms");
        assert_eq!(duration(1_500), "1.5 s");
        assert_eq!(duration(200_000), "3 min 20 s");
    }
}

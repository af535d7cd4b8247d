//! `GET /admin/actors` (admins only): every actor kind's mailbox right now, from the meters.

use std::collections::BTreeMap;

use actix_web::HttpResponse;
use prometheus::proto::MetricFamily;
use serde::Serialize;

use crate::auth::extract::AdminUser;
use crate::problem::Problem;

#[derive(Serialize, Default, utoipa::ToSchema)]
pub struct ActorKind {
    mailbox_depth: f64,
    messages_handled: BTreeMap<String, f64>,
}

fn label<'a>(metric: &'a prometheus::proto::Metric, name: &str) -> Option<&'a str> {
    metric
        .get_label()
        .iter()
        .find(|l| l.name() == name)
        .map(|l| l.value())
}

fn collect(families: &[MetricFamily]) -> BTreeMap<String, ActorKind> {
    let mut kinds: BTreeMap<String, ActorKind> = BTreeMap::new();
    for family in families {
        for metric in family.get_metric() {
            let Some(actor) = label(metric, "actor") else {
                continue;
            };
            match family.name() {
                "aisocial_actor_mailbox_depth" => {
                    kinds.entry(actor.to_owned()).or_default().mailbox_depth =
                        metric.get_gauge().value();
                }
                "aisocial_actor_messages_handled_total" => {
                    let message = label(metric, "message").unwrap_or("?").to_owned();
                    kinds
                        .entry(actor.to_owned())
                        .or_default()
                        .messages_handled
                        .insert(message, metric.get_counter().value());
                }
                _ => {}
            }
        }
    }
    kinds
}

/// Every actor kind right now.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Actors {
    actors: BTreeMap<String, ActorKind>,
}

#[utoipa::path(
    get,
    path = "/admin/actors",
    tag = "operations",
    summary = "Every actor kind's mailbox (admins only)",
    responses((status = 200, body = Actors), (status = 401, description = "not signed in", body = Problem, content_type = "application/problem+json"), (status = 403, description = "not an admin", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = []))
)]
pub async fn actors(_admin: AdminUser) -> HttpResponse {
    HttpResponse::Ok().json(Actors {
        actors: collect(&prometheus::gather()),
    })
}

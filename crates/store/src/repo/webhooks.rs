//! Webhook endpoints and the delivery log.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::models::{WebhookDelivery, WebhookEndpoint};
use crate::schema::{webhook_deliveries, webhook_endpoints};
use crate::{update_where, DbConn, StoreError};

pub const ACTIVE: &str = "active";
pub const DISABLED: &str = "disabled";

pub fn insert(conn: &mut DbConn, row: &WebhookEndpoint) -> Result<(), StoreError> {
    direct!(conn, {
        diesel::insert_into(webhook_endpoints::table)
            .values(row)
            .execute(conn)?;
        Ok(())
    })
}

pub fn update(conn: &mut DbConn, row: &WebhookEndpoint) -> Result<(), StoreError> {
    direct!(conn, {
        update_where(
            webhook_endpoints::table,
            webhook_endpoints::table.primary_key().eq(&row.id),
            row,
        )
        .execute(conn)?;
        Ok(())
    })
}

pub fn get(conn: &mut DbConn, id: &str) -> Result<Option<WebhookEndpoint>, StoreError> {
    direct!(conn, {
        Ok(webhook_endpoints::table
            .find(id)
            .select(WebhookEndpoint::as_select())
            .get_result(conn)
            .optional()?)
    })
}

pub fn list(conn: &mut DbConn) -> Result<Vec<WebhookEndpoint>, StoreError> {
    direct!(conn, {
        Ok(webhook_endpoints::table
            .order((
                webhook_endpoints::created_at.asc(),
                webhook_endpoints::id.asc(),
            ))
            .select(WebhookEndpoint::as_select())
            .load(conn)?)
    })
}

pub fn active(conn: &mut DbConn) -> Result<Vec<WebhookEndpoint>, StoreError> {
    direct!(conn, {
        Ok(webhook_endpoints::table
            .filter(webhook_endpoints::status.eq(ACTIVE))
            .order(webhook_endpoints::id.asc())
            .select(WebhookEndpoint::as_select())
            .load(conn)?)
    })
}

pub fn delete(conn: &mut DbConn, id: &str) -> Result<bool, StoreError> {
    direct!(conn, {
        Ok(diesel::delete(webhook_endpoints::table.find(id)).execute(conn)? == 1)
    })
}

/// Adds one to the failure streak and returns the new value.
pub fn record_failure(conn: &mut DbConn, id: &str, now: NaiveDateTime) -> Result<i32, StoreError> {
    direct!(conn, {
        update_where(
            webhook_endpoints::table,
            webhook_endpoints::table.primary_key().eq(id),
            (
                webhook_endpoints::consecutive_failures
                    .eq(webhook_endpoints::consecutive_failures + 1),
                webhook_endpoints::updated_at.eq(now),
            ),
        )
        .execute(conn)?;
        Ok(webhook_endpoints::table
            .find(id)
            .select(webhook_endpoints::consecutive_failures)
            .get_result(conn)?)
    })
}

pub fn record_success(conn: &mut DbConn, id: &str) -> Result<(), StoreError> {
    direct!(conn, {
        update_where(
            webhook_endpoints::table,
            webhook_endpoints::table
                .primary_key()
                .eq(id)
                .and(webhook_endpoints::consecutive_failures.ne(0)),
            webhook_endpoints::consecutive_failures.eq(0),
        )
        .execute(conn)?;
        Ok(())
    })
}

pub fn insert_delivery(conn: &mut DbConn, row: &WebhookDelivery) -> Result<(), StoreError> {
    direct!(conn, {
        diesel::insert_into(webhook_deliveries::table)
            .values(row)
            .execute(conn)?;
        Ok(())
    })
}

pub fn get_delivery(conn: &mut DbConn, id: &str) -> Result<Option<WebhookDelivery>, StoreError> {
    direct!(conn, {
        Ok(webhook_deliveries::table
            .find(id)
            .select(WebhookDelivery::as_select())
            .get_result(conn)
            .optional()?)
    })
}

/// Deliveries of an endpoint, newest first, keyset-paged by id (UUIDv7).
pub fn deliveries_of(
    conn: &mut DbConn,
    endpoint_id: &str,
    before: Option<&str>,
    limit: i64,
) -> Result<Vec<WebhookDelivery>, StoreError> {
    direct!(conn, {
        let mut q = webhook_deliveries::table
            .filter(webhook_deliveries::endpoint_id.eq(endpoint_id))
            .select(WebhookDelivery::as_select())
            .into_boxed();
        if let Some(b) = before {
            q = q.filter(webhook_deliveries::id.lt(b.to_string()));
        }
        Ok(q.order(webhook_deliveries::id.desc())
            .limit(limit)
            .load(conn)?)
    })
}

//! The customer directory: list (with a lookup by number, paged by id),
//! read, create, change and delete customers. Reads need the admin or
//! supervisor role, and so do changes. A change is applied to the live
//! directory calls use ([`crate::directory`]) as soon as it is stored.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::{IntoParams, ToSchema};

use super::auth::{authorize, Need};
use super::errors::{error, json_response, ApiError, ErrorBody};
use super::openapi::AuthErrors;
use super::request::{limit_param, ApiBody, ApiPath, ApiQuery};
use super::ApiState;
use crate::directory::Change;
use crate::store::customers::{CustomerRecord, DirectoryError};

mod bodies;

use self::bodies::NewCustomer;

/// A customer of the directory.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct Customer {
    /// Its id.
    id: i64,
    /// The name the agent sees.
    name: String,
    /// Normalised numbers (digits with the `+`); the first is the main one.
    numbers: Vec<String>,
    /// A language tag.
    #[schema(required = true)]
    language: Option<String>,
    /// Whether the customer is a VIP (`priority` above 0).
    vip: bool,
    /// 0: an ordinary customer; above 0 a VIP, higher first.
    priority: i32,
    /// Account id in another system.
    #[schema(required = true)]
    account: Option<String>,
    /// Free text.
    notes: String,
    /// Labels.
    tags: Vec<String>,
    /// When it was created.
    #[schema(format = DateTime)]
    created_at: String,
    /// Its last change.
    #[schema(format = DateTime)]
    updated_at: String,
}

impl From<CustomerRecord> for Customer {
    fn from(r: CustomerRecord) -> Customer {
        let c = r.customer;
        Customer {
            id: r.id,
            name: c.name,
            numbers: c.numbers,
            language: c.language,
            vip: c.priority > 0,
            priority: c.priority,
            account: c.account,
            notes: c.notes,
            tags: c.tags,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

/// Query of `GET /api/v1/customers`.
#[derive(Debug, serde::Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct CustomerFilter {
    /// Only the customer a call from this number would be matched to: the
    /// number normalised, with or without its leading `+` (empty: no
    /// filter; what is not a number matches nobody)
    number: Option<String>,
    /// Only customers whose id is above this (the previous page's
    /// `next_after`)
    #[param(minimum = 0, maximum = 9007199254740991_i64)] // MAX_AFTER
    after: Option<i64>,
    /// At most this many, by id
    #[param(minimum = 1, maximum = 1000, default = 100)]
    limit: Option<i64>,
}

/// The largest `after` (2^53 - 1: exact in every JSON reader).
const MAX_AFTER: i64 = 9_007_199_254_740_991;

/// The answer of `GET /api/v1/customers`.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct CustomerList {
    /// Customers by id.
    customers: Vec<Customer>,
    /// The `after` of the next page; null when this is the last one.
    #[schema(required = true)]
    next_after: Option<i64>,
}

/// How a refused change is answered.
fn refused(e: DirectoryError) -> Response {
    match e {
        DirectoryError::NumberInUse { number, owner } => ApiError::coded(
            StatusCode::CONFLICT,
            "number_in_use",
            format!("`numbers`: {number} already belongs to customer {owner}"),
        )
        .into_response(),
        DirectoryError::NotFound(id) => not_found(&id.to_string()),
        DirectoryError::Other(e) => error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    }
}

fn not_found(id: &str) -> Response {
    error(StatusCode::NOT_FOUND, format!("no customer `{id}`"))
}

/// The id of the path (every id is a positive integer; anything else is
/// no customer).
fn customer_id(id: &str) -> Option<i64> {
    id.parse::<i64>().ok().filter(|i| *i > 0)
}

/// Customers, by id
#[utoipa::path(
    get,
    path = "/api/v1/customers",
    operation_id = "listCustomers",
    tag = "customers",
    params(CustomerFilter),
    responses(
        (status = 200, description = "Customers", body = CustomerList),
        (status = 400, description = "Malformed query string (JSON error, code `bad_request`).", body = ErrorBody),
        AuthErrors,
        (status = 422, description = "`limit` outside 1-1000, `after` outside its range", body = ErrorBody),
        (status = 503, description = "Store unavailable", body = ErrorBody),
    )
)]
pub(super) async fn list_customers(
    State(ctx): State<Arc<ApiState>>,
    headers: HeaderMap,
    ApiQuery(f): ApiQuery<CustomerFilter>,
) -> Response {
    if let Err(r) = authorize(&ctx, &headers, None, Need::Read) {
        return r.into_response();
    }
    let limit = match limit_param(f.limit) {
        Ok(l) => l,
        Err(r) => return r.into_response(),
    };
    if let Some(a) = f.after.filter(|a| !(0..=MAX_AFTER).contains(a)) {
        let message = format!("`after` must be 0 to {MAX_AFTER}, not {a}");
        return error(StatusCode::UNPROCESSABLE_ENTITY, message);
    }
    let numbers = match f.number.as_deref().map(str::trim).filter(|n| !n.is_empty()) {
        None => Vec::new(),
        Some(n) => match ringback_customers::spellings(n) {
            // Not a number: nobody has it.
            s if s.is_empty() => {
                let empty = CustomerList {
                    customers: Vec::new(),
                    next_after: None,
                };
                return json_response(StatusCode::OK, empty);
            }
            s => s,
        },
    };
    let after = f.after.unwrap_or(0);
    // As a call is matched: the normalised number first, the other
    // spelling only when nobody has that.
    let mut listed = Ok(Vec::new());
    for spelling in numbers.chunks(1) {
        listed = ctx.store.list_customers(spelling, after, limit).await;
        if !matches!(&listed, Ok(rows) if rows.is_empty()) {
            break;
        }
    }
    if numbers.is_empty() {
        listed = ctx.store.list_customers(&[], after, limit).await;
    }
    match listed {
        Ok(rows) => {
            let full = i64::try_from(rows.len()).is_ok_and(|n| n == limit);
            let next_after = rows.last().map(|r| r.id).filter(|_| full);
            let customers = rows.into_iter().map(Customer::from).collect();
            json_response(
                StatusCode::OK,
                CustomerList {
                    customers,
                    next_after,
                },
            )
        }
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    }
}

/// Add a customer
#[utoipa::path(
    post,
    path = "/api/v1/customers",
    operation_id = "createCustomer",
    tag = "customers",
    request_body = NewCustomer,
    responses(
        (status = 201, description = "Stored; calls from its numbers now carry its name", body = Customer,
            links(
                ("getCustomer" = (operation_id = "getCustomer", parameters(("id" = "$response.body#/id")))),
                ("updateCustomer" = (operation_id = "updateCustomer", parameters(("id" = "$response.body#/id")))),
                ("deleteCustomer" = (operation_id = "deleteCustomer", parameters(("id" = "$response.body#/id")))),
            )
        ),
        (status = 400, description = "Body is not JSON", body = ErrorBody),
        AuthErrors,
        (status = 409, description = "A number belongs to another customer (code `number_in_use`)", body = ErrorBody),
        (status = 413, description = "Body over 2 MB", body = ErrorBody),
        (status = 422, description = "Invalid field (code `invalid` or `invalid_number`)", body = ErrorBody),
        (status = 503, description = "Store unavailable", body = ErrorBody),
    )
)]
pub(super) async fn create_customer(
    State(ctx): State<Arc<ApiState>>,
    headers: HeaderMap,
    ApiBody(body): ApiBody,
) -> Response {
    if let Err(r) = authorize(&ctx, &headers, None, Need::Supervise) {
        return r.into_response();
    }
    let customer = match NewCustomer::parse(&body) {
        Ok(c) => c,
        Err(r) => return r.into_response(),
    };
    let _change = ctx.directory.write().await;
    match ctx.store.create_customer(&customer).await {
        Ok((record, version)) => {
            ctx.directory
                .applied(version, Change::Put(record.id, &record.customer));
            json_response(StatusCode::CREATED, Customer::from(record))
        }
        Err(e) => refused(e),
    }
}

/// One customer
#[utoipa::path(
    get,
    path = "/api/v1/customers/{id}",
    operation_id = "getCustomer",
    tag = "customers",
    params(("id" = i64, Path, description = "Customer id", minimum = 1)),
    responses(
        (status = 200, description = "Customer", body = Customer),
        (status = 400, description = "Path is not UTF-8 after percent-decoding", body = ErrorBody),
        AuthErrors,
        (status = 404, description = "Unknown", body = ErrorBody),
        (status = 503, description = "Store unavailable", body = ErrorBody),
    )
)]
pub(super) async fn get_customer(
    State(ctx): State<Arc<ApiState>>,
    headers: HeaderMap,
    ApiPath(id): ApiPath<String>,
) -> Response {
    if let Err(r) = authorize(&ctx, &headers, None, Need::Read) {
        return r.into_response();
    }
    let Some(n) = customer_id(&id) else {
        return not_found(&id);
    };
    match ctx.store.customer(n).await {
        Ok(Some(r)) => json_response(StatusCode::OK, Customer::from(r)),
        Ok(None) => not_found(&id),
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    }
}

/// Replace a customer's fields and numbers
#[utoipa::path(
    put,
    path = "/api/v1/customers/{id}",
    operation_id = "updateCustomer",
    tag = "customers",
    params(("id" = i64, Path, description = "Customer id", minimum = 1)),
    request_body = NewCustomer,
    responses(
        (status = 200, description = "Changed", body = Customer),
        (status = 400, description = "Body is not JSON, or the path is not UTF-8", body = ErrorBody),
        AuthErrors,
        (status = 404, description = "Unknown", body = ErrorBody),
        (status = 409, description = "A number belongs to another customer (code `number_in_use`)", body = ErrorBody),
        (status = 413, description = "Body over 2 MB", body = ErrorBody),
        (status = 422, description = "Invalid field (code `invalid` or `invalid_number`)", body = ErrorBody),
        (status = 503, description = "Store unavailable", body = ErrorBody),
    )
)]
pub(super) async fn update_customer(
    State(ctx): State<Arc<ApiState>>,
    headers: HeaderMap,
    ApiPath(id): ApiPath<String>,
    ApiBody(body): ApiBody,
) -> Response {
    if let Err(r) = authorize(&ctx, &headers, None, Need::Supervise) {
        return r.into_response();
    }
    let Some(n) = customer_id(&id) else {
        return not_found(&id);
    };
    let customer = match NewCustomer::parse(&body) {
        Ok(c) => c,
        Err(r) => return r.into_response(),
    };
    let _change = ctx.directory.write().await;
    match ctx.store.update_customer(n, &customer).await {
        Ok((record, version)) => {
            ctx.directory
                .applied(version, Change::Put(n, &record.customer));
            json_response(StatusCode::OK, Customer::from(record))
        }
        Err(e) => refused(e),
    }
}

/// Delete a customer
#[utoipa::path(
    delete,
    path = "/api/v1/customers/{id}",
    operation_id = "deleteCustomer",
    tag = "customers",
    params(("id" = i64, Path, description = "Customer id", minimum = 1)),
    responses(
        (status = 204, description = "Deleted, with its numbers"),
        (status = 400, description = "Path is not UTF-8 after percent-decoding", body = ErrorBody),
        AuthErrors,
        (status = 404, description = "Unknown", body = ErrorBody),
        (status = 503, description = "Store unavailable", body = ErrorBody),
    )
)]
pub(super) async fn delete_customer(
    State(ctx): State<Arc<ApiState>>,
    headers: HeaderMap,
    ApiPath(id): ApiPath<String>,
) -> Response {
    if let Err(r) = authorize(&ctx, &headers, None, Need::Supervise) {
        return r.into_response();
    }
    let Some(n) = customer_id(&id) else {
        return not_found(&id);
    };
    let _change = ctx.directory.write().await;
    match ctx.store.delete_customer(n).await {
        Ok(version) => {
            ctx.directory.applied(version, Change::Remove(n));
            StatusCode::NO_CONTENT.into_response()
        }
        Err(e) => refused(e),
    }
}

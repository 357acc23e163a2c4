//! The body of a new or changed customer: a type whose schema the document
//! shows, parsed from the JSON with errors that name the field. The rules
//! are the directory's own (`ringback_customers`), so the API, the CSV
//! import and the document agree.

use axum::body::Bytes;
use axum::http::StatusCode;
use ringback_customers::{self as rules, Customer, FieldError};
use serde_json::Value;
use utoipa::openapi::schema::{Array, ArrayBuilder, ObjectBuilder, SchemaType, Type};
use utoipa::ToSchema;

use super::super::callbacks::bodies::{number_syntax_ok, NUMBER_PATTERN};
use super::super::errors::ApiError;
use super::super::request::{parse_body, str_field};

/// A customer's fields: those left out (or `null`) are empty. A change
/// (`PUT`) replaces every field, so send the whole record. Every number
/// belongs to one customer: one another customer has is refused with `409`.
#[derive(Debug, ToSchema)]
// The document's schema of the body; `parse` reads the JSON into the
// directory's own `Customer`, so these fields are never set.
#[allow(dead_code)]
pub(super) struct NewCustomer {
    /// The name the agent sees (`X-Ringback-Caller-Name`).
    #[schema(min_length = 1, max_length = 200, pattern = r"^[^\x00-\x1F\x7F]+$")]
    name: String,
    /// The customer's numbers (the first is the main one): each 7 to 15
    /// digits, optionally after a `+`, with spaces, dashes, dots and
    /// parentheses anywhere; stored normalised (digits with the `+`), the
    /// same number given twice kept once.
    #[schema(schema_with = numbers_schema)]
    numbers: Vec<String>,
    /// A language tag such as `en` or `pt-BR`.
    #[schema(max_length = 35, pattern = r"^[A-Za-z]{2,8}(-[A-Za-z0-9]{1,8})*$")]
    language: Option<String>,
    /// 0 for an ordinary customer (the default); above 0 a VIP, higher
    /// first.
    #[schema(minimum = 0, maximum = 1000)]
    priority: Option<i32>,
    /// The customer's account id in another system (`X-Ringback-Account`).
    #[schema(max_length = 64, pattern = r"^[^\x00-\x1F\x7F]*$")]
    account: Option<String>,
    /// Free text; tabs and line breaks allowed.
    #[schema(max_length = 2000, pattern = r"^[^\x00-\x08\x0B\x0C\x0E-\x1F\x7F]*$")]
    notes: Option<String>,
    /// Labels: no `;`, no control characters, no space at either end.
    #[schema(schema_with = tags_schema)]
    tags: Option<Vec<String>>,
}

fn numbers_schema() -> Array {
    let number = ObjectBuilder::new()
        .schema_type(Type::String)
        .max_length(Some(32))
        .pattern(Some(NUMBER_PATTERN))
        .build();
    ArrayBuilder::new()
        .items(number)
        .min_items(Some(1))
        .max_items(Some(rules::NUMBERS_MAX))
        .description(Some(
            "The customer's numbers (the first is the main one): each 7 to 15 digits, optionally \
             after a `+`, with spaces, dashes, dots and parentheses anywhere; stored normalised \
             (digits with the `+`), the same number given twice kept once.",
        ))
        .build()
}

/// What a tag may be ([`rules::check_tag`]).
pub(super) const TAG_PATTERN: &str = r"^[^\x00-\x1F\x7F; ]([^\x00-\x1F\x7F;]*[^\x00-\x1F\x7F; ])?$";

fn tags_schema() -> Array {
    let tag = ObjectBuilder::new()
        .schema_type(Type::String)
        .min_length(Some(1))
        .max_length(Some(rules::TAG_MAX))
        .pattern(Some(TAG_PATTERN))
        .build();
    ArrayBuilder::new()
        .schema_type(SchemaType::from_iter([Type::Array, Type::Null]))
        .items(tag)
        .max_items(Some(rules::TAGS_MAX))
        .description(Some(
            "Labels: no `;`, no control characters, no space at either end (none when left out \
             or null).",
        ))
        .build()
}

fn invalid(e: FieldError) -> ApiError {
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, e.to_string())
}

fn unprocessable(message: String) -> ApiError {
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, message)
}

/// An array of strings (`None` when absent or `null`).
fn strings(v: &Value, name: &str) -> Result<Option<Vec<String>>, ApiError> {
    match v.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| match i {
                Value::String(s) => Ok(s.clone()),
                _ => Err(unprocessable(format!("`{name}` must hold strings only"))),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(_) => Err(unprocessable(format!(
            "`{name}` must be an array of strings"
        ))),
    }
}

/// An integer field (a JSON number without a fraction).
fn integer(v: &Value, name: &str) -> Result<Option<i64>, ApiError> {
    match v.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_i64()
            .or_else(|| {
                n.as_f64()
                    .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15)
                    .map(|f| f as i64)
            })
            .map(Some)
            .ok_or_else(|| unprocessable(format!("`{name}` must be a whole number"))),
        Some(_) => Err(unprocessable(format!("`{name}` must be a whole number"))),
    }
}

impl NewCustomer {
    /// The customer the body describes, each field checked as the schema
    /// says.
    pub(super) fn parse(body: &Bytes) -> Result<Customer, ApiError> {
        let v = parse_body(body)?;
        let name = str_field(&v, "name", true, rules::NAME_MAX)?.unwrap_or_default();
        rules::check_name(&name).map_err(invalid)?;
        let given =
            strings(&v, "numbers")?.ok_or_else(|| unprocessable("`numbers` is required".into()))?;
        if given.len() > rules::NUMBERS_MAX {
            return Err(unprocessable(format!(
                "`numbers`: at most {} numbers",
                rules::NUMBERS_MAX
            )));
        }
        if let Some(bad) = given
            .iter()
            .find(|n| n.chars().count() > 32 || !number_syntax_ok(n))
        {
            return Err(ApiError::coded(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_number",
                format!(
                    "`numbers`: {bad:?} is not 7 to 15 digits, optionally after a `+` (not \
                     followed by 0), with spaces, dashes, dots and parentheses allowed between"
                ),
            ));
        }
        let numbers = rules::normalize_numbers("numbers", given.iter().map(String::as_str))
            .map_err(invalid)?;
        let language = str_field(&v, "language", false, rules::LANGUAGE_MAX)?;
        if let Some(l) = &language {
            rules::check_language(l).map_err(invalid)?;
        }
        let priority = match integer(&v, "priority")? {
            Some(p) => rules::check_priority(p).map_err(invalid)?,
            None => 0,
        };
        let account = str_field(&v, "account", false, rules::ACCOUNT_MAX)?;
        if let Some(a) = &account {
            rules::check_account(a).map_err(invalid)?;
        }
        let notes = str_field(&v, "notes", false, rules::NOTES_MAX)?.unwrap_or_default();
        rules::check_notes(&notes).map_err(invalid)?;
        let tags = strings(&v, "tags")?.unwrap_or_default();
        let customer = Customer {
            name,
            numbers,
            language,
            priority,
            account,
            notes,
            tags,
        };
        customer.check().map_err(invalid)?;
        Ok(customer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<Customer, String> {
        NewCustomer::parse(&Bytes::from(json.to_string())).map_err(|e| {
            let r = axum::response::IntoResponse::into_response(e);
            r.status().to_string()
        })
    }

    #[test]
    fn a_body_becomes_a_checked_customer() {
        let c = parse(
            r#"{"name":"Jane","numbers":["+1 (555) 010-0001","+15550100001"],"priority":5.0,
               "tags":["gold"],"language":null,"account":"A-1","notes":"x\ny"}"#,
        )
        .expect("valid");
        assert_eq!(c.numbers, vec!["+15550100001"]);
        assert_eq!(
            (c.priority, c.language, c.account.as_deref()),
            (5, None, Some("A-1"))
        );
        for bad in [
            r#"{"numbers":["+15550100001"]}"#,
            r#"{"name":"","numbers":["+15550100001"]}"#,
            r#"{"name":"J","numbers":[]}"#,
            r#"{"name":"J","numbers":["911"]}"#,
            r#"{"name":"J","numbers":[5550100001]}"#,
            r#"{"name":"J","numbers":["+15550100001"],"priority":1001}"#,
            r#"{"name":"J","numbers":["+15550100001"],"priority":1.5}"#,
            r#"{"name":"J","numbers":["+15550100001"],"tags":["a;b"]}"#,
            r#"{"name":"J","numbers":["+15550100001"],"tags":[" a"]}"#,
            r#"{"name":"J","numbers":["+15550100001"],"language":"english!"}"#,
            r#"{"name":"J\r\nX: y","numbers":["+15550100001"]}"#,
        ] {
            assert_eq!(parse(bad).unwrap_err(), "422 Unprocessable Entity", "{bad}");
        }
    }
}

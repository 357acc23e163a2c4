//! The in-memory directory calls look their caller up in: number →
//! what a call needs to know about the customer ([`Known`]), and each
//! customer's numbers, so a change replaces exactly that customer's
//! entries. A lookup is one or two hash-map probes; no store round trip.

use std::collections::HashMap;
use std::sync::Arc;

use crate::Customer;

/// What a call needs to know about its caller (the rest of the record
/// stays in the store).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Known {
    /// The customer's id in the store.
    pub id: i64,
    /// Their name.
    pub name: String,
    /// Their account id.
    pub account: Option<String>,
    /// Their language tag.
    pub language: Option<String>,
    /// Their priority (0: ordinary).
    pub priority: i32,
}

impl Known {
    /// The call-side view of a stored customer.
    pub fn of(id: i64, c: &Customer) -> Known {
        Known {
            id,
            name: c.name.clone(),
            account: c.account.clone(),
            language: c.language.clone(),
            priority: c.priority,
        }
    }

    /// The key that recognises this customer whichever of their numbers
    /// they call from (`customer:<id>`): what sticky routing remembers and
    /// repeat calls are counted by.
    pub fn routing_key(&self) -> String {
        routing_key(self.id)
    }
}

/// The routing key of customer `id` (see [`Known::routing_key`]).
pub fn routing_key(id: i64) -> String {
    format!("customer:{id}")
}

/// Numbers to customers, and customers to their numbers.
#[derive(Debug, Default)]
pub struct Index {
    by_number: HashMap<Box<str>, Arc<Known>>,
    numbers_of: HashMap<i64, Box<[Box<str>]>>,
}

impl Index {
    /// An index of `customers` (id and record).
    pub fn of<'a>(customers: impl IntoIterator<Item = (i64, &'a Customer)>) -> Index {
        let mut index = Index::default();
        for (id, c) in customers {
            index.put(Known::of(id, c), &c.numbers);
        }
        index
    }

    /// Add a customer, or replace what the index had for its id.
    pub fn put(&mut self, known: Known, numbers: &[String]) {
        let id = known.id;
        self.remove(id);
        let known = Arc::new(known);
        for n in numbers {
            // A number belongs to one customer (the store's unique key); a
            // stale owner here loses it.
            if let Some(old) = self.by_number.insert(n.as_str().into(), Arc::clone(&known)) {
                if old.id != id {
                    if let Some(theirs) = self.numbers_of.get_mut(&old.id) {
                        let kept: Vec<Box<str>> = theirs
                            .iter()
                            .filter(|m| m.as_ref() != n.as_str())
                            .cloned()
                            .collect();
                        *theirs = kept.into_boxed_slice();
                    }
                }
            }
        }
        let numbers: Vec<Box<str>> = numbers.iter().map(|n| n.as_str().into()).collect();
        self.numbers_of.insert(id, numbers.into_boxed_slice());
    }

    /// Forget a customer.
    pub fn remove(&mut self, id: i64) {
        if let Some(numbers) = self.numbers_of.remove(&id) {
            for n in numbers.iter() {
                if self.by_number.get(n).is_some_and(|k| k.id == id) {
                    self.by_number.remove(n);
                }
            }
        }
    }

    /// The customer a call from `caller` (the From user, as it came) is
    /// from: the number as given, else its normalised form, else the same
    /// digits with the leading `+` added or taken away (`15550100001`
    /// finds `+15550100001`). Most callers hit the first probe, which
    /// allocates nothing.
    pub fn lookup(&self, caller: &str) -> Option<Arc<Known>> {
        if let Some(k) = self.by_number.get(caller) {
            return Some(Arc::clone(k));
        }
        crate::spellings(caller)
            .iter()
            .find_map(|n| self.by_number.get(n.as_str()))
            .map(Arc::clone)
    }

    /// Customers in the index.
    pub fn customers(&self) -> usize {
        self.numbers_of.len()
    }

    /// Numbers in the index.
    pub fn numbers(&self) -> usize {
        self.by_number.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn customer(name: &str, numbers: &[&str]) -> Customer {
        Customer {
            name: name.into(),
            numbers: numbers.iter().map(|n| n.to_string()).collect(),
            ..Customer::default()
        }
    }

    #[test]
    fn lookup_by_any_number_in_any_spelling() {
        let jane = customer("Jane", &["+15550100001", "+15550100002"]);
        let bob = customer("Bob", &["5550100003"]);
        let index = Index::of([(1, &jane), (2, &bob)]);
        assert_eq!(index.customers(), 2);
        assert_eq!(index.numbers(), 3);
        let name = |caller: &str| index.lookup(caller).map(|k| k.name.clone());
        assert_eq!(name("+15550100001").as_deref(), Some("Jane"));
        assert_eq!(name("+15550100002").as_deref(), Some("Jane"));
        assert_eq!(name("+1 555 010 0002").as_deref(), Some("Jane"));
        assert_eq!(name("15550100001").as_deref(), Some("Jane"));
        assert_eq!(name("+5550100003").as_deref(), Some("Bob"));
        assert_eq!(name("+15550100009"), None);
        assert_eq!(name("alice.smith"), None);
        assert_eq!(name(""), None);
    }

    #[test]
    fn a_change_replaces_exactly_that_customers_entries() {
        let jane = customer("Jane", &["+15550100001", "+15550100002"]);
        let mut index = Index::of([(1, &jane)]);
        let moved = customer("Jane Roe", &["+15550100002", "+15550100004"]);
        index.put(Known::of(1, &moved), &moved.numbers);
        assert_eq!(index.lookup("+15550100001"), None);
        assert_eq!(
            index.lookup("+15550100004").map(|k| k.name.clone()),
            Some("Jane Roe".into())
        );
        // A number taken over by another customer leaves its old owner.
        let bob = customer("Bob", &["+15550100002"]);
        index.put(Known::of(2, &bob), &bob.numbers);
        assert_eq!(index.lookup("+15550100002").map(|k| k.id), Some(2));
        index.remove(1);
        assert_eq!(index.lookup("+15550100002").map(|k| k.id), Some(2));
        assert_eq!(index.lookup("+15550100004"), None);
        assert_eq!((index.customers(), index.numbers()), (1, 1));
    }
}

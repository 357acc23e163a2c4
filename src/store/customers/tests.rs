use ringback_customers::Customer;

use super::{DirectoryError, ImportError};
use crate::store::Store;

fn customer(name: &str, numbers: &[&str]) -> Customer {
    Customer {
        name: name.into(),
        numbers: numbers.iter().map(|n| n.to_string()).collect(),
        language: Some("en".into()),
        priority: 3,
        account: Some("A-1".into()),
        notes: "note\nline".into(),
        tags: vec!["gold".into()],
    }
}

async fn store(dir: &tempfile::TempDir) -> Store {
    let url = format!("sqlite://{}", dir.path().join("c.db").display());
    Store::connect(&url).await.expect("connect")
}

#[tokio::test]
async fn create_update_delete_and_the_version_grows_with_each() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = store(&dir).await;
    assert_eq!(s.directory_version().await.expect("version"), 0);
    let jane = customer("Jane", &["+15550100001", "+15550100002"]);
    let (rec, v1) = s.create_customer(&jane).await.expect("create");
    assert_eq!(v1, 1);
    assert_eq!(rec.customer, jane);
    let (bob, v2) = s
        .create_customer(&customer("Bob", &["+15550100003"]))
        .await
        .expect("create bob");
    assert_eq!(v2, 2);
    // A number belongs to one customer.
    match s.create_customer(&customer("Eve", &["+15550100002"])).await {
        Err(DirectoryError::NumberInUse { number, owner }) => {
            assert_eq!((number.as_str(), owner), ("+15550100002", rec.id))
        }
        other => panic!("{other:?}"),
    }
    match s
        .update_customer(bob.id, &customer("Bob", &["+15550100001"]))
        .await
    {
        Err(DirectoryError::NumberInUse { owner, .. }) => assert_eq!(owner, rec.id),
        other => panic!("{other:?}"),
    }
    // Refused changes raise no version.
    assert_eq!(s.directory_version().await.expect("version"), 2);
    let moved = customer("Jane Roe", &["+15550100004", "+15550100001"]);
    let (updated, v3) = s.update_customer(rec.id, &moved).await.expect("update");
    assert_eq!((updated.customer.clone(), v3), (moved.clone(), 3));
    assert_eq!(updated.created_at, rec.created_at);
    let read = s.customer(rec.id).await.expect("read").expect("found");
    assert_eq!(read.customer, moved, "numbers keep their order");
    // Lookup by number, paging by id.
    let by_number = s
        .list_customers(&["+15550100001".into(), "15550100001".into()], 0, 10)
        .await
        .expect("list");
    assert_eq!(
        by_number.iter().map(|r| r.id).collect::<Vec<_>>(),
        vec![rec.id]
    );
    assert!(s
        .list_customers(&["+15550100002".into()], 0, 10)
        .await
        .expect("list")
        .is_empty());
    let page = s.list_customers(&[], 0, 1).await.expect("page");
    assert_eq!(page.iter().map(|r| r.id).collect::<Vec<_>>(), vec![rec.id]);
    let next = s.list_customers(&[], rec.id, 1).await.expect("page 2");
    assert_eq!(next.iter().map(|r| r.id).collect::<Vec<_>>(), vec![bob.id]);
    assert_eq!(s.delete_customer(bob.id).await.expect("delete"), 4);
    assert!(matches!(
        s.delete_customer(bob.id).await,
        Err(DirectoryError::NotFound(_))
    ));
    assert!(matches!(
        s.update_customer(bob.id, &jane).await,
        Err(DirectoryError::NotFound(_))
    ));
    let (v, all) = s.all_customers().await.expect("all");
    assert_eq!(v, 4);
    assert_eq!(all.len(), 1);
    // The deleted customer's number is free again.
    s.create_customer(&customer("Bob 2", &["+15550100003"]))
        .await
        .expect("number freed");
}

#[tokio::test]
async fn an_import_is_all_or_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = store(&dir).await;
    let (jane, _) = s
        .create_customer(&customer("Jane", &["+15550100001"]))
        .await
        .expect("create");
    let file = vec![
        customer("A", &["+15550100010"]),
        customer("B", &["+15550100011", "+15550100001"]),
    ];
    match s.import_customers(&file, false).await {
        Err(ImportError::Taken(t)) => {
            assert_eq!(t.len(), 1);
            assert_eq!((t[0].row, t[0].owner), (1, jane.id));
            assert_eq!(t[0].owner_name, "Jane");
        }
        other => panic!("{other:?}"),
    }
    let (v, all) = s.all_customers().await.expect("all");
    assert_eq!((v, all.len()), (1, 1), "nothing imported");
    // Replacing the directory: the old numbers no longer count.
    assert_eq!(s.import_customers(&file, true).await.expect("replace"), 2);
    let (_, all) = s.all_customers().await.expect("all");
    let names: Vec<&str> = all.iter().map(|r| r.customer.name.as_str()).collect();
    assert_eq!(names, vec!["A", "B"]);
    assert_eq!(
        all[1].customer.numbers,
        vec!["+15550100011", "+15550100001"]
    );
}

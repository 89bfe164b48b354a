//! Many moat invocations at once: the state directory's locks keep them apart.

use moat_e2e::{assert_no_leaks, unique_id, Bundle, Moat};

#[test]
fn twenty_containers_created_and_deleted_in_parallel() {
    let moat = Moat::new();
    let b = Bundle::busybox(&["sleep", "1000"]);
    let ids: Vec<String> = (0..20).map(|_| unique_id("par")).collect();
    std::thread::scope(|s| {
        for id in &ids {
            let (moat, b) = (&moat, &b);
            s.spawn(move || {
                moat.ok(&["create", "--bundle", b.path().to_str().unwrap(), id]);
                moat.ok(&["start", id]);
            });
        }
    });
    let listed = moat.ok(&["list", "-q"]);
    assert_eq!(listed.lines().count(), 20, "{listed}");
    std::thread::scope(|s| {
        for id in &ids {
            let moat = &moat;
            s.spawn(move || moat.ok(&["delete", "--force", id]));
        }
    });
    for id in &ids {
        assert_no_leaks(&moat, id, b.path());
    }
}

#[test]
fn racing_verbs_on_one_container_stay_consistent() {
    let moat = Moat::new();
    let b = Bundle::busybox(&["sleep", "1000"]);
    let id = unique_id("race");
    // the same id created 8 times at once: exactly one wins
    let wins: usize = std::thread::scope(|s| {
        let hs: Vec<_> = (0..8)
            .map(|_| {
                let (moat, b, id) = (&moat, &b, &id);
                s.spawn(move || moat.run(&["create", "--bundle", b.path().to_str().unwrap(), id]).status.success())
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap() as usize).sum()
    });
    assert_eq!(wins, 1);
    // start and delete --force at once: either order, nothing left behind
    std::thread::scope(|s| {
        s.spawn(|| moat.run(&["start", &id]));
        s.spawn(|| moat.run(&["delete", "--force", &id]));
    });
    let _ = moat.run(&["delete", "--force", &id]);
    assert_no_leaks(&moat, &id, b.path());
}

use super::is_loopback;

#[test]
fn loopback_peers_are_recognised() {
    for local in [
        "127.0.0.1:1",
        "127.9.9.9:1",
        "[::1]:1",
        "[::ffff:127.0.0.1]:1",
    ] {
        assert!(is_loopback(local.parse().expect("address")), "{local}");
    }
    for remote in [
        "10.0.0.1:1",
        "0.0.0.0:1",
        "[2001:db8::1]:1",
        "[::ffff:10.0.0.1]:1",
    ] {
        assert!(!is_loopback(remote.parse().expect("address")), "{remote}");
    }
}

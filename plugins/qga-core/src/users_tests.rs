//! utmp records crafted byte by byte in glibc's x86_64 layout.

use super::{logins, Login, RECORD, USER_PROCESS};

const LOGIN_PROCESS: i16 = 6;
const DEAD_PROCESS: i16 = 8;

/// One 384-byte record: `ut_type`, `ut_user`, `ut_tv`; the other fields
/// hold noise that must not be read as any of those.
fn record(kind: i16, user: &[u8], seconds: i32, micros: i32) -> Vec<u8> {
    let mut record = vec![0xA5; RECORD];
    record[0..2].copy_from_slice(&kind.to_le_bytes());
    let name = &mut record[44..76];
    name.fill(0);
    name[..user.len()].copy_from_slice(user);
    record[340..344].copy_from_slice(&seconds.to_le_bytes());
    record[344..348].copy_from_slice(&micros.to_le_bytes());
    record
}

fn login(user: &str, time: f64) -> Login {
    Login {
        user: user.to_owned(),
        time,
    }
}

#[test]
fn user_processes_are_listed_once_each_with_their_earliest_login() {
    let utmp = [
        record(USER_PROCESS, b"bob", 1_700_000_100, 250_000),
        record(LOGIN_PROCESS, b"LOGIN", 1_600_000_000, 0),
        record(USER_PROCESS, b"alice", 1_700_000_000, 500_000),
        record(USER_PROCESS, b"bob", 1_700_000_050, 0),
        record(DEAD_PROCESS, b"carol", 1_500_000_000, 0),
        record(USER_PROCESS, b"bob", 1_700_000_200, 0),
    ]
    .concat();
    assert_eq!(
        logins(&utmp),
        [
            login("bob", 1_700_000_050.0),
            login("alice", 1_700_000_000.5)
        ]
    );
}

#[test]
fn a_name_filling_the_whole_field_has_no_terminator_and_is_read_to_its_end() {
    let long = [b'x'; 32];
    let utmp = record(USER_PROCESS, &long, 1, 0);
    assert_eq!(logins(&utmp), [login(&"x".repeat(32), 1.0)]);
}

#[test]
fn a_trailing_partial_record_and_an_empty_file_give_no_users() {
    assert_eq!(logins(&[]), []);
    let mut utmp = record(USER_PROCESS, b"alice", 10, 0);
    utmp.extend_from_slice(&record(USER_PROCESS, b"bob", 20, 0)[..RECORD - 1]);
    assert_eq!(logins(&utmp), [login("alice", 10.0)]);
}

#[test]
fn seconds_are_signed_32_bit_as_glibc_stores_them() {
    let utmp = record(USER_PROCESS, b"old", -1, 500_000);
    assert_eq!(logins(&utmp), [login("old", -0.5)]);
}

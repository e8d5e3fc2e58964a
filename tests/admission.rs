//! Meeting passwords and signed tokens over real WebSockets: a password is asked of
//! newcomers only, wrong guesses are refused and limited per room and per address, only
//! hosts set it and it never travels back out; a server with `--auth-secret` admits only
//! valid tokens, each fault with its own code, and a host token makes its holder the host.

#![cfg(feature = "ssr")]

mod support;

use std::time::Duration;

use room::protocol::{ClientMsg, ErrorCode, Role, ServerMsg};
use room::server::auth::{mint, Claims, SigningKey};
use support::{resuming_join_msg, secret_join_msg, Client, TestServer};

const QUIET: Duration = Duration::from_millis(300);
const SECRET: &str = "the integration tests' shared secret";

/// Sets the meeting password as `host` and waits until everyone in `watchers` hears of it.
async fn set_password(host: &mut Client, password: Option<&str>, watchers: &mut [&mut Client]) {
    host.send(&ClientMsg::SetPassword {
        password: password.map(String::from),
    })
    .await;
    let wanted = password.is_some();
    host.recv_until(|m| matches!(m, ServerMsg::Rules { rules } if rules.password == wanted))
        .await;
    for watcher in watchers {
        watcher
            .recv_until(|m| matches!(m, ServerMsg::Rules { rules } if rules.password == wanted))
            .await;
    }
}

async fn greeted(server: &TestServer) -> Client {
    let mut client = server.client().await;
    client.hello().await;
    client
}

#[tokio::test]
async fn a_password_is_asked_of_newcomers_only_and_never_sent_back() {
    let server = TestServer::start(&[]).await;
    let (mut ann, ann_joined) = server.joined("pw", "Ann").await;
    let (mut bob, bob_joined) = server.joined("pw", "Bob").await;
    ann.drain(QUIET).await;
    // Bob, a member, may not set it; nothing changes.
    bob.send(&ClientMsg::SetPassword {
        password: Some("mine".into()),
    })
    .await;
    bob.expect_error(ErrorCode::Forbidden).await;
    let mut cy = greeted(&server).await;
    cy.join("pw", "Cy").await;
    ann.drain(QUIET).await;
    bob.drain(QUIET).await;

    // Ann sets it; the rules everyone hears say there is one, and nothing carries it.
    ann.send(&ClientMsg::SetPassword {
        password: Some("tiger stripes".into()),
    })
    .await;
    let heard = bob
        .recv_until(|m| matches!(m, ServerMsg::Rules { rules } if rules.password))
        .await;
    assert!(!heard.to_json().contains("tiger"));
    ann.drain(QUIET).await;

    let mut dee = greeted(&server).await;
    dee.send(&secret_join_msg("pw", "Dee", None, None)).await;
    dee.expect_error(ErrorCode::PasswordRequired).await;
    dee.send(&secret_join_msg("pw", "Dee", Some("lion"), None))
        .await;
    dee.expect_error(ErrorCode::WrongPassword).await;
    let joined = dee
        .join_with(secret_join_msg("pw", "Dee", Some("tiger stripes"), None))
        .await;
    assert_eq!(joined.peers.len(), 4);
    // A guess longer than any password is refused before anyone hashes it.
    let mut eve = greeted(&server).await;
    eve.send(&secret_join_msg(
        "pw",
        "Eve",
        Some(&"x".repeat(10_000)),
        None,
    ))
    .await;
    eve.expect_error(ErrorCode::BadMessage).await;

    // Members already in come back without it: by resume token after a drop...
    bob.vanish();
    let mut bob_again = greeted(&server).await;
    let resumed = bob_again
        .join_with(resuming_join_msg(
            "pw",
            "Bob",
            Some(bob_joined.resume_token.clone()),
            None,
        ))
        .await;
    assert_eq!(resumed.you, bob_joined.you);
    // ...and the host key opens it too (Ann on her phone; the key moves when the role does,
    // so she is still in on her laptop).
    let mut ann_phone = greeted(&server).await;
    let key = ann_joined.host_key.expect("the host key");
    let back = ann_phone
        .join_with(ClientMsg::Join {
            room: "pw".into(),
            name: "Ann (phone)".into(),
            resume: None,
            last_seen: None,
            host_key: Some(key),
            browser: None,
            password: None,
            token: None,
        })
        .await;
    assert_eq!(back.peers.last().unwrap().role, Role::Host);

    // Cleared: newcomers walk in again.
    cy.drain(QUIET).await;
    set_password(&mut ann_phone, None, &mut [&mut cy]).await;
    let mut fay = greeted(&server).await;
    fay.join("pw", "Fay").await;
    server.stop().await;
}

#[tokio::test]
async fn password_guesses_are_limited_per_address_and_per_room() {
    let server = TestServer::start(&[]).await;
    let (mut ann, _) = server.joined("guess", "Ann").await;
    set_password(&mut ann, Some("right"), &mut []).await;
    let guess = |n: usize| secret_join_msg("guess", format!("Guesser {n}"), Some("wrong"), None);

    // One address: ten guesses at once, then it must wait, even for the right password.
    let mut one = Client::connect_from(server.addr, "127.0.0.2").await;
    one.hello().await;
    for n in 0..10 {
        one.send(&guess(n)).await;
        one.expect_error(ErrorCode::WrongPassword).await;
    }
    one.send(&secret_join_msg("guess", "Guesser", Some("right"), None))
        .await;
    one.expect_error(ErrorCode::TooManyGuesses).await;

    // The room: twenty guesses from all addresses together (the ten above count), then
    // every address waits.
    let mut two = Client::connect_from(server.addr, "127.0.0.3").await;
    two.hello().await;
    for n in 0..10 {
        two.send(&guess(n)).await;
        two.expect_error(ErrorCode::WrongPassword).await;
    }
    let mut three = Client::connect_from(server.addr, "127.0.0.4").await;
    three.hello().await;
    three.send(&guess(0)).await;
    three.expect_error(ErrorCode::TooManyGuesses).await;
    // Nobody inside noticed any of it.
    ann.expect_silence(QUIET).await;
    server.stop().await;
}

fn claims(room: &str, name: &str, role: &str) -> Claims {
    Claims {
        room: Some(room.into()),
        name: Some(name.into()),
        role: Some(role.into()),
        exp: Some(now() + 3600),
        nbf: None,
    }
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn signed(claims: &Claims) -> String {
    mint(&SigningKey::Secret(SECRET.into()), claims).unwrap()
}

#[tokio::test]
async fn a_token_server_refuses_each_bad_token_with_its_own_code() {
    let server = TestServer::start(&["--auth-secret", SECRET]).await;
    let mut eve = greeted(&server).await;
    let refused = |token: Option<String>, code: ErrorCode| {
        let msg = secret_join_msg("board", "Eve", None, token.as_deref());
        (msg, code)
    };
    let b64 = |bytes: &[u8]| {
        use base64::Engine as _;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    };
    let payload = b64(serde_json::to_string(&claims("board", "Eve", "host"))
        .unwrap()
        .as_bytes());
    let cases = [
        refused(None, ErrorCode::TokenRequired),
        refused(Some("garbage".into()), ErrorCode::TokenInvalid),
        refused(
            Some(
                mint(
                    &SigningKey::Secret("somebody else's secret key".into()),
                    &claims("board", "Eve", "host"),
                )
                .unwrap(),
            ),
            ErrorCode::TokenInvalid,
        ),
        refused(
            Some(format!("{}.{payload}.", b64(br#"{"alg":"none"}"#))),
            ErrorCode::TokenAlgorithm,
        ),
        refused(
            Some(signed(&Claims {
                exp: Some(now() - 3600),
                ..claims("board", "Eve", "host")
            })),
            ErrorCode::TokenExpired,
        ),
        refused(
            Some(signed(&Claims {
                nbf: Some(now() + 3600),
                ..claims("board", "Eve", "host")
            })),
            ErrorCode::TokenNotYetValid,
        ),
        refused(
            Some(signed(&claims("other-room", "Eve", "host"))),
            ErrorCode::TokenWrongRoom,
        ),
        refused(
            Some(signed(&Claims {
                name: None,
                ..claims("board", "Eve", "host")
            })),
            ErrorCode::TokenClaims,
        ),
    ];
    for (msg, code) in cases {
        eve.send(&msg).await;
        eve.expect_error(code).await;
    }
    // Nobody got in: the room does not even exist, so a good token makes its holder host.
    let mut ann = greeted(&server).await;
    let joined = ann
        .join_with(secret_join_msg(
            "board",
            "typed name is ignored",
            None,
            Some(&signed(&claims("*", "Ann Lee", "member"))),
        ))
        .await;
    assert_eq!(joined.peers[0].name, "Ann Lee");
    assert_eq!(joined.peers[0].role, Role::Host);
    server.stop().await;
}

#[tokio::test]
async fn a_host_token_takes_the_host_role_and_an_expired_token_still_resumes() {
    let server = TestServer::start(&["--auth-secret", SECRET]).await;
    let member = signed(&claims("team", "Bob", "member"));
    let mut bob = greeted(&server).await;
    let bob_joined = bob
        .join_with(secret_join_msg("team", "Bob", None, Some(&member)))
        .await;
    assert_eq!(bob_joined.peers[0].role, Role::Host, "first one in");
    let mut ann = greeted(&server).await;
    let ann_joined = ann
        .join_with(secret_join_msg(
            "team",
            "Ann",
            None,
            Some(&signed(&claims("team", "Ann", "host"))),
        ))
        .await;
    let ann_info = ann_joined.peers.iter().find(|p| p.name == "Ann").unwrap();
    assert_eq!(ann_info.role, Role::Host);
    assert!(ann_joined.host_key.is_some());
    let bob_now = bob
        .recv_until(|m| matches!(m, ServerMsg::PeerUpdated { peer } if peer.name == "Bob"))
        .await;
    assert!(matches!(bob_now, ServerMsg::PeerUpdated { peer } if peer.role == Role::Cohost));

    // Bob's token expires while he is in; his connection drops; he comes back as himself.
    let expired = signed(&Claims {
        exp: Some(now() - 3600),
        ..claims("team", "Bob", "member")
    });
    bob.vanish();
    let mut bob_again = greeted(&server).await;
    let mut resume = resuming_join_msg("team", "Bob", Some(bob_joined.resume_token), None);
    if let ClientMsg::Join { token, .. } = &mut resume {
        *token = Some(expired.clone());
    }
    let resumed = bob_again.join_with(resume).await;
    assert_eq!(resumed.you, bob_joined.you);
    // Without a membership to resume, the expired token lets nobody in.
    let mut cy = greeted(&server).await;
    cy.send(&secret_join_msg("team", "Cy", None, Some(&expired)))
        .await;
    cy.expect_error(ErrorCode::TokenExpired).await;
    server.stop().await;
}

#[tokio::test]
async fn room_token_mints_what_the_server_accepts() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_room"))
        .args(["token", "--auth-secret", SECRET])
        .args(["--room", "cli", "--name", "Operator", "--role", "host"])
        .output()
        .expect("the room binary runs");
    assert!(output.status.success(), "{output:?}");
    let token = String::from_utf8(output.stdout).unwrap();
    let server = TestServer::start(&["--auth-secret", SECRET]).await;
    let mut op = greeted(&server).await;
    let joined = op
        .join_with(secret_join_msg("cli", "x", None, Some(token.trim())))
        .await;
    assert_eq!(joined.peers[0].name, "Operator");
    // Without a key to sign with, it says so instead of printing something useless.
    let unsigned = std::process::Command::new(env!("CARGO_BIN_EXE_room"))
        .args(["token", "--room", "cli", "--name", "Operator"])
        .env_remove("ROOM_AUTH_SECRET")
        .output()
        .unwrap();
    assert!(!unsigned.status.success());
    assert!(String::from_utf8_lossy(&unsigned.stderr).contains("--auth-secret"));
    server.stop().await;
}

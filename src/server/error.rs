//! Why the server could not start: a typed error per cause, each with a sentence for the log.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot read the site settings {path}: {source}")]
    ReadSiteSettings {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid site settings in {path}: {message}")]
    InvalidSiteSettings { path: PathBuf, message: String },
    #[error("cannot create the data directory {path}: {source}")]
    CreateDataDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot open the chat store {path}: {source}")]
    OpenStore {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("invalid --public-url or --allowed-origins: {0}")]
    InvalidOrigin(String),
    #[error("cannot start the chat store's thread: {0}")]
    StoreThread(std::io::Error),
    #[error("cannot open the media socket on UDP {addr}: {source}")]
    MediaSocket {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot open the TURN relay on {addr} (UDP and TCP): {source}")]
    TurnSocket {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot use the TLS certificate or key for TURN over TLS: {0}")]
    TurnTls(String),
    #[error("cannot check room tokens: {0}")]
    Auth(String),
    #[error("cannot read or create the TURN secret {path}: {source}")]
    TurnSecret {
        path: PathBuf,
        source: std::io::Error,
    },
}

//! How bytes become requests: the HTTP/1.1 accept loop (`serve.rs`), what
//! it does at `--max-connections` and with clients that misbehave
//! (`connections.rs`), and the client socket that times out unread answers
//! (`stream.rs`). It serves any tower `Service` and knows nothing of the
//! API's endpoints.

pub mod connections;
pub mod serve;
pub mod stream;

//! HTTP: the accept loop every listener runs (`serve`), the public listener's serving threads
//! (`lanes`), the public request path (`public`, with `admission` and the response `body`
//! guard), and the response helpers both listeners use (`response`).

mod admission;
mod body;
pub mod lanes;
pub mod public;
pub mod response;
mod serve;

pub use public::{handle, Public};
pub use response::{error_response, full, healthy, json_response, ResponseBody};
pub use serve::{serve, Connection};

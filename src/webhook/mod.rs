//! What reproduces the reference webhook (`pkg/webhook`, the release `consts::REFERENCE_VERSION`
//! names), field for field: one function per rule, the plan those rules decide for a pod, the
//! mutation that applies it in the reference's order, the proxy containers, the authority host
//! by cloud, and the token layouts of earlier releases.

pub mod cloud;
pub mod inject;
pub mod layout;
pub mod plan;
pub mod proxy;
pub mod rules;

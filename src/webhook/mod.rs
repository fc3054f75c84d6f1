//! What reproduces the reference webhook v1.6.0 (`pkg/webhook`), field for field: one function
//! per rule, the mutation in its order, the proxy containers, the authority host by cloud.

pub mod cloud;
pub mod inject;
pub mod proxy;
pub mod rules;

//! What the reference webhook lacks, and is ours: who may use which identity (allowlists,
//! grants by Kubernetes RBAC, and their checks), the boundary around every way to obtain an exchangeable token, UPDATEs that
//! change nothing of an identity, the final pod as it will run (completeness, shadow-mode
//! differences), and the warnings for what would otherwise fail silently (settings, keys).

pub mod allowlist;
pub mod boundary;
pub mod catalogue;
pub mod claim;
pub mod final_pod;
pub mod grants;
pub mod holders;
pub mod keys;
pub mod placement;
pub mod rbac;
pub mod unchanged;
pub mod warnings;

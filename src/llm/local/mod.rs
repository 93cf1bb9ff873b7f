pub mod hub;
pub mod requant;

//! TextGrad (placeholder, being written).
#[derive(Clone, Debug, Default)]
pub struct TextGradOptions;
pub struct TextGrad;

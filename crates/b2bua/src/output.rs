use concierge_sip::Transmit;

/// A call inside one [`crate::Switch`]: stable for the call's life, never reused.
pub type CallRef = u64;

/// What the driver must do.
#[derive(Debug, Clone)]
pub enum Output {
    /// Send SIP bytes.
    Sip(Transmit),
}

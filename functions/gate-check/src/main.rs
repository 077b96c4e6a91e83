//! Lambda entry for gate-check. There is no tailscaled socket on Lambda, so the function
//! reports itself not configured there (in `/api/functions`) and refuses work with 503; it is
//! built for parity with the other functions, not to be deployed. Build with
//! `cargo lambda build --release -p gate-check`.

fn main() -> Result<(), hub_runtime::lambda::Error> {
    hub_runtime::lambda::run(gate_check::REGISTRATION)
}

//! Lambda entry for metrics-flush: the push endpoint as a Function URL, same Router and
//! middleware as behind `hub-gateway`. Build with `cargo lambda build --release -p metrics-flush`.

fn main() -> Result<(), hub_runtime::lambda::Error> {
    hub_runtime::lambda::run(metrics_flush::REGISTRATION)
}

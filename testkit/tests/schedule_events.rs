//! `fixtures/scheduler-v2.json` stands for what template.yaml's schedules send the functions, so
//! the Lambda tests that send it test the deployed path: every `ScheduleV2` `Input` in the
//! template must be that event once EventBridge Scheduler fills in the scheduled time.

use hub_testkit::lambda::schedule_event;
use serde_json::Value;

const SCHEDULED_TIME: &str = "<aws.scheduler.scheduled-time>";

#[test]
fn every_schedule_of_template_yaml_sends_the_fixture() {
    let fixture = schedule_event("scheduler-v2.json");
    let time = fixture["time"].as_str().expect("the fixture has a time");
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../template.yaml");
    let template = std::fs::read_to_string(&path).expect("read template.yaml");
    let inputs: Vec<Value> = template
        .lines()
        .filter_map(|line| line.trim().strip_prefix("Input: '"))
        .map(|rest| {
            let json = rest.strip_suffix('\'').expect("a single-quoted Input");
            serde_json::from_str(&json.replace(SCHEDULED_TIME, time))
                .unwrap_or_else(|e| panic!("Input is not JSON ({e}): {json}"))
        })
        .collect();
    let schedules = template.matches("Type: ScheduleV2").count();
    assert!(schedules > 0, "template.yaml has schedules");
    assert_eq!(inputs.len(), schedules, "one Input per ScheduleV2");
    for input in inputs {
        assert_eq!(input, fixture);
    }
}

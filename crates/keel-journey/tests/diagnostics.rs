//! Broken journeys and what `keel journey check` says about them. Each case
//! edits the default journey the way an author might break it; the snapshot
//! holds every diagnostic, rendered as the CLI prints it.

use keel_journey::{DEFAULT_JOURNEY, check};

/// Applies `(from, to)` edits (each must match exactly once) and checks.
fn diagnose(edits: &[(&str, &str)]) -> String {
    let mut src = DEFAULT_JOURNEY.to_owned();
    for (from, to) in edits {
        assert_eq!(src.matches(from).count(), 1, "edit anchor {from:?} must match once");
        src = src.replacen(from, to, 1);
    }
    match check("journey.toml", &src) {
        Ok(_) => panic!("the edited journey should not check: {edits:?}"),
        Err(diagnostics) => diagnostics.iter().map(|d| format!("{d}\n")).collect(),
    }
}

macro_rules! case {
    ($name:ident, $($edit:expr),+ $(,)?) => {
        #[test]
        fn $name() {
            insta::assert_snapshot!(diagnose(&[$($edit),+]));
        }
    };
}

case!(toml_syntax_error, ("name = \"Onboarding\"", "name = \"Onboarding"));
case!(unknown_field, ("min_dwell_days = 14\n", "min_dwel_days = 14\n"));
case!(missing_required_field, ("watch = \"ttv_days\"\n", ""));
case!(
    cel_syntax_error,
    (
        "exit = \"first_value_reached && active_seat_ratio >= 0.3\"",
        "exit = \"first_value_reached && (active_seat_ratio >= 0.3\""
    )
);
case!(
    unknown_metric_with_suggestion,
    (
        "core_features_weekly >= 3 && active_seat_ratio >= 0.6",
        "core_feature_weekly >= 3 && active_seat_ratio >= 0.6"
    )
);
case!(type_mismatch_in_gate, ("exit = \"days_to_renewal <= 0\"", "exit = \"days_to_renewal <= 'soon'\""));
case!(gate_that_is_not_a_condition, ("exit = \"days_to_renewal <= 0\"", "exit = \"days_to_renewal - 1\""));
case!(
    duplicate_stage_id,
    ("id = \"expansion\"\nname = \"Expansion\"", "id = \"adoption\"\nname = \"Expansion\"")
);
case!(duplicate_moment_id, ("id = \"silence\"\n", "id = \"usage_cliff\"\n"));
case!(unknown_watch_metric, ("watch = \"feature_breadth\"", "watch = \"feature_bredth\""));
case!(unknown_detector, ("detector = \"champion_change\"", "detector = \"champion_left\""));
case!(
    moment_with_detector_and_condition,
    ("detector = \"silence\"\n", "detector = \"silence\"\nwhen = \"days_since_touchpoint > 30\"\n")
);
case!(
    bad_reference_in_map_cell,
    (
        "links = { stages = [\"renewal\"], touchpoints = [\"renewal_conversation\"] }",
        "links = { stages = [\"renewals\"], touchpoints = [\"renewal_call\"] }"
    )
);
case!(
    overlapping_phases,
    ("id = \"messy_middle\"\nmonths = [5, 8]", "id = \"messy_middle\"\nmonths = [4, 9]")
);
case!(phase_outside_the_year, ("id = \"renewal\"\nmonths = [11, 12]", "id = \"renewal\"\nmonths = [11, 13]"));
case!(
    unknown_map_row,
    ("row = \"loyalty_builders\"\nmonths = [1, 1]", "row = \"loyalty_builder\"\nmonths = [1, 1]")
);
case!(
    health_curve_out_of_order,
    ("curve = [[1.0, 0.0], [3.0, 60.0], [5.0, 100.0]]", "curve = [[1.0, 0.0], [5.0, 60.0], [3.0, 100.0]]")
);
case!(
    bands_in_the_wrong_order,
    ("bands = { red = 40.0, yellow = 70.0 }", "bands = { red = 70.0, yellow = 40.0 }")
);
case!(
    segment_weights_for_unknown_segment_and_component,
    ("[health.segment_weights.smb]\nfirst_value = 35.0", "[health.segment_weights.small]\nfirst_val = 35.0")
);
case!(unknown_touch_model, ("touch = \"hybrid\"", "touch = \"low_touch\""));
case!(first_stage_entered_after_a_previous_one, ("entry = \"contract_start\"", "entry = \"previous_exit\""));
case!(
    unknown_setting_override,
    (
        "overrides = { ttv_target_days = 30, silence_days = 90",
        "overrides = { ttv_target_day = 30, silence_days = 90"
    )
);
case!(user_metric_shadowing_a_builtin, ("[metrics.reports_viewed_28d]", "[metrics.active_users_28d]"));
case!(
    user_metric_with_two_definitions,
    ("count = [\"report_viewed\"]\n", "count = [\"report_viewed\"]\nexpr = \"1\"\n")
);
case!(
    several_errors_are_all_reported,
    ("core_features_weekly >= 3 && active_seat_ratio >= 0.6", "core_features_weekly >= 'three'"),
    ("id = \"silence\"\n", "id = \"Silence!\"\n"),
    (
        "severity = \"critical\"\nplay = \"rebuild_champion\"",
        "severity = \"urgent\"\nplay = \"rebuild_champion\""
    ),
);

// Plays, owners and governance.
case!(
    play_triggered_by_an_unknown_moment,
    ("trigger = { moment = \"usage_cliff\" }", "trigger = { moment = \"usage_clif\" }")
);
case!(
    play_trigger_with_two_kinds,
    (
        "trigger = { days_before_renewal = 60 }",
        "trigger = { days_before_renewal = 60, stage_entry = \"renewal\" }"
    )
);
case!(
    gate_slip_on_a_stage_without_target,
    ("trigger = { stage_entry = \"onboarding\" }", "trigger = { gate_slip = \"expansion\" }")
);
case!(moment_naming_a_play_it_does_not_trigger, ("play = \"reengage\"", "play = \"usage_recovery\""));
case!(
    step_field_of_another_kind,
    ("owner = \"support_lead\"\ndue_days = 2", "owner = \"support_lead\"\nto = \"champion\"\ndue_days = 2")
);
case!(
    template_with_a_misspelt_variable,
    (
        "title = \"Share a usage insight with {{ account.name }}\"",
        "title = \"Share a usage insight with {{ acount.name }}\""
    )
);
case!(
    template_naming_an_unknown_metric,
    ("{{ metrics.open_tickets }} tickets open", "{{ metrics.open_ticket }} tickets open")
);
case!(
    template_syntax_error,
    (
        "title = \"Schedule the first EBR with {{ account.name }}",
        "title = \"Schedule the first EBR with {{ account.name }"
    )
);
case!(
    branch_jumping_backwards,
    (
        "when = 'segment == \"smb\"'\ngoto = \"nudge\"\n\n[[plays.steps]]\nkind = \"task\"\ntitle = \"Usage",
        "when = 'segment == \"smb\"'\ngoto = \"nudge\"\n\n[[plays.steps]]\nid = \"ask\"\nkind = \"task\"\ntitle = \"Usage"
    ),
    (
        "when = \"true\"\ngoto = \"end\"\n\n[[plays.steps]]\nid = \"nudge\"\nkind = \"email\"\nto = \"admin\"",
        "when = \"true\"\ngoto = \"ask\"\n\n[[plays.steps]]\nid = \"nudge\"\nkind = \"email\"\nto = \"admin\""
    )
);
case!(
    wait_until_without_days,
    (
        "trigger = { days_before_renewal = 60 }\nholdout_pct = 0\n",
        "trigger = { days_before_renewal = 60 }\nholdout_pct = 0\n\n[[plays.steps]]\nkind = \"wait\"\nuntil = \"first_value_reached\"\n"
    )
);
case!(
    email_in_an_internal_play,
    (
        "id = \"rebuild_champion\"\nname = \"Champion change\"\ntype = \"risk\"",
        "id = \"rebuild_champion\"\nname = \"Champion change\"\ntype = \"risk\"\ncustomer_facing = false"
    )
);
case!(unknown_owner_role, ("owner = \"marketing\"", "owner = \"marketeer\""));
case!(
    holdout_out_of_range,
    (
        "holdout_pct = 20\ncooldown_days = 60\noutcome = { when = \"first_value_reached\"",
        "holdout_pct = 100\ncooldown_days = 60\noutcome = { when = \"first_value_reached\""
    )
);
case!(
    governance_rule_with_bad_condition_and_play_type,
    (
        "play_types = [\"opportunity\"]\nwhen = 'health_band == \"red\"",
        "play_types = [\"oportunity\"]\nwhen = 'health_band > 3 || health_band == \"red\""
    )
);
case!(
    bad_timezone_and_quiet_hours,
    ("default_timezone = \"UTC\"", "default_timezone = \"Mars/Olympus\""),
    ("from = \"19:00\"", "from = \"7pm\"")
);
case!(
    webhook_with_a_bad_url,
    (
        "[[plays.steps]]\nkind = \"log_touchpoint\"",
        "[[plays.steps]]\nkind = \"webhook\"\nurl = \"ftp://crm.example.com/hook\"\nsecret_env = \"crm-secret\"\n\n[[plays.steps]]\nkind = \"log_touchpoint\""
    )
);
case!(
    opportunity_of_an_unknown_type,
    ("opportunity = \"expansion\"", "opportunity = \"upsell\"\ntouchpoint = \"call\"")
);

#[test]
fn a_journey_without_plays_keeps_its_play_names_as_labels() {
    let start = DEFAULT_JOURNEY
        .find("# ---------------------------------------------------------------------- owners")
        .unwrap();
    let without = &DEFAULT_JOURNEY[..start];
    let j = check("journey.toml", without).unwrap_or_else(|d| panic!("{d:?}"));
    assert!(j.plays.is_empty());
    assert_eq!(
        j.moments.iter().find(|m| m.id == "usage_cliff").and_then(|m| m.play.as_deref()),
        Some("usage_recovery")
    );
}

// Input that once overflowed the stack: each is refused with a located
// error instead (the process used to abort).
case!(
    cel_nested_too_deep,
    (
        "exit = \"days_to_renewal <= 0\"",
        &format!("exit = \"{}days_to_renewal <= 0{}\"", "(".repeat(512), ")".repeat(512))
    )
);
case!(
    cel_unary_run_too_long,
    ("exit = \"days_to_renewal <= 0\"", &format!("exit = \"{}(days_to_renewal <= 0)\"", "!".repeat(1000)))
);
case!(
    toml_nested_too_deep,
    ("[first_value]", &format!("deep = {}{}\n[first_value]", "[".repeat(1000), "]".repeat(1000)))
);
case!(
    toml_inline_tables_nested_too_deep,
    ("[first_value]", &format!("deep = {}{}\n[first_value]", "{a = ".repeat(1000), "}".repeat(1000)))
);

//! The single integration-test binary: golden plans, CLI behaviour, the script layer, generated
//! files, and end-to-end runs against real lab hosts.

mod apply_safety;
mod cli;
mod confignode_e2e;
mod confignode_pair;
mod confignode_pair_e2e;
mod confignode_plan;
mod dhcp_live;
mod doctor_e2e;
mod doctor_plan;
mod e2e;
mod evacuate_e2e;
mod examples;
mod fresh_machine;
mod generated;
mod golden;
mod hnode;
mod hostile_input;
mod image;
mod injection;
mod instance_debootstrap;
mod instance_e2e;
mod instance_image_escape;
mod instance_plan;
mod instance_remove_e2e;
mod lab_lifecycle;
mod lamp_e2e;
mod lamp_plan;
mod placement_plan;
mod pxe;
mod pxe_scale;
mod round_trips;
mod storage;
mod storage_vms;
mod support;
mod templates;

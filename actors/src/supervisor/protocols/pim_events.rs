//! How the PIM core's events become the daemon's: a log line at info
//! under the Protocol facility and a `subscribe` event for neighbor and
//! DR changes (RFC 7761 §4.3); the rest reaches users through routes.

use mcr::control::Event;
use mcr::pim::instance::DownReason;
use mcr::pim::PimEvent;
use tracing::info;

fn down_reason(r: DownReason) -> &'static str {
    match r {
        DownReason::Expired => "expired",
        DownReason::Goodbye => "goodbye",
        DownReason::InterfaceDown => "interface_down",
        DownReason::PimDisabled => "pim_disabled",
    }
}

pub(super) fn to_event(ev: PimEvent) -> Option<Event> {
    Some(match ev {
        PimEvent::NeighborUp {
            interface,
            neighbor,
            ..
        } => {
            info!(target: "Protocol", "neighbor {neighbor} up on {interface}");
            Event::PimNeighborUp {
                interface,
                neighbor,
            }
        }
        PimEvent::NeighborDown {
            interface,
            neighbor,
            reason,
            ..
        } => {
            info!(target: "Protocol", "neighbor {neighbor} down on {interface} ({})", down_reason(reason));
            Event::PimNeighborDown {
                interface,
                neighbor,
                reason: down_reason(reason).into(),
            }
        }
        PimEvent::NeighborRestarted {
            interface,
            neighbor,
            ..
        } => {
            info!(target: "Protocol", "neighbor {neighbor} on {interface} restarted (new generation id)");
            Event::PimNeighborRestarted {
                interface,
                neighbor,
            }
        }
        PimEvent::DrChanged {
            interface,
            old,
            new,
            we_are_dr,
            ..
        } => {
            info!(target: "Protocol", "DR on {interface} is now {new}{}", if we_are_dr { " (us)" } else { "" });
            Event::PimDrChange {
                interface,
                old,
                new,
                we_are_dr,
            }
        }
        // Downstream joins, asserts and keepalives reach users through
        // the routes they change (`pim-route` events, `pim routes`,
        // `pim assert`); the register tunnel is the data path's
        // (`pim_data.rs`).
        PimEvent::DownstreamJoin { .. } | PimEvent::DownstreamLeave { .. } => return None,
        PimEvent::RegisterTunnel { .. }
        | PimEvent::Keepalive { .. }
        | PimEvent::AssertChanged { .. } => return None,
    })
}

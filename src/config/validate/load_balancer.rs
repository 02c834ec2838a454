//! A traffic policy's load balancer (istio/istio `validateLoadBalancer`,
//! `agent.ValidateLocalityLbSetting`, `agent.ValidateZoneAwareLbSetting`,
//! `validateLocalities`), read from the YAML the model keeps.

use super::super::{Resource, codes};
use super::Checker;
use super::opaque::{At, Field};

/// The node labels locality settings may not name where Istio handles them itself.
const TOPOLOGY_LABELS: [&str; 3] = [
    "topology.kubernetes.io/region",
    "topology.kubernetes.io/zone",
    "topology.istio.io/subzone",
];

impl Checker<'_> {
    pub(super) fn load_balancer(&mut self, r: &Resource, at: At<'_, '_>, has_outlier: bool) {
        if at.has("simple") && at.has("consistentHash") {
            self.refuse(
                codes::INVALID_TRAFFIC_POLICY,
                r,
                at.path,
                "a load balancer is either `simple` or `consistentHash`, not both",
            );
        }
        self.opaque_enum(
            r,
            at,
            "simple",
            &[
                "UNSPECIFIED",
                "LEAST_CONN",
                "RANDOM",
                "PASSTHROUGH",
                "ROUND_ROBIN",
                "LEAST_REQUEST",
            ],
        );
        if let Some(ch) = at.get("consistentHash") {
            self.consistent_hash(r, ch.at());
        }
        let (locality, zone) = (at.get("localityLbSetting"), at.get("zoneAwareLbSetting"));
        if locality.is_some() && zone.is_some() {
            self.refuse(
                codes::INVALID_TRAFFIC_POLICY,
                r,
                at.path,
                "only one of localityLbSetting and zoneAwareLbSetting can be set",
            );
        }
        if let Some(l) = &locality {
            self.locality_lb(r, l.at(), has_outlier);
        }
        if let Some(z) = &zone {
            self.zone_aware_lb(r, z.at(), has_outlier);
        }
        if let Some(w) = at.get("warmup") {
            let w = w.at();
            if w.has("duration") {
                self.policy_duration(r, w, "duration");
            } else {
                self.refuse(
                    codes::INVALID_TRAFFIC_POLICY,
                    r,
                    w.path,
                    "warmup needs `duration`",
                );
            }
            if w.num("minimumPercent")
                .is_some_and(|p| !(0.0..=100.0).contains(&p))
            {
                self.refuse(
                    codes::INVALID_TRAFFIC_POLICY,
                    r,
                    &super::join(w.path, "minimumPercent"),
                    "minimumPercent must be in 0..100",
                );
            }
            if w.num("aggression").is_some_and(|a| a <= 0.0) {
                self.refuse(
                    codes::INVALID_TRAFFIC_POLICY,
                    r,
                    &super::join(w.path, "aggression"),
                    "aggression must be greater than 0",
                );
            }
        }
        self.policy_duration(r, at, "warmupDurationSecs");
    }

    fn consistent_hash(&mut self, r: &Resource, ch: At<'_, '_>) {
        if let Some(cookie) = ch.get("httpCookie") {
            let cookie = cookie.at();
            if cookie.str_or_empty("name").is_empty() {
                self.refuse(
                    codes::INVALID_TRAFFIC_POLICY,
                    r,
                    cookie.path,
                    "an httpCookie needs a `name`",
                );
            }
            let mut names: Vec<&str> = Vec::new();
            for attr in cookie.items("attributes") {
                let name = attr.at().str_or_empty("name");
                if name.is_empty() {
                    self.refuse(
                        codes::INVALID_TRAFFIC_POLICY,
                        r,
                        &attr.path,
                        "a cookie attribute name cannot be empty",
                    );
                } else if names.contains(&name) {
                    self.refuse(
                        codes::INVALID_TRAFFIC_POLICY,
                        r,
                        &attr.path,
                        format!("cookie attribute `{name}` is defined twice"),
                    );
                } else {
                    names.push(name);
                }
            }
        }
        let ring = ch.num("minimumRingSize").is_some_and(|n| n != 0.0);
        if ring {
            self.warning(
                codes::DEPRECATED_FIELD,
                r,
                &super::join(ch.path, "minimumRingSize"),
                "consistentHash `minimumRingSize` is deprecated".into(),
                Some("use `ringHash: {minimumRingSize: ...}`".into()),
            );
            if ch.has("maglev") || ch.has("ringHash") {
                self.refuse(
                    codes::INVALID_TRAFFIC_POLICY,
                    r,
                    ch.path,
                    "only one of minimumRingSize, maglev and ringHash can be set",
                );
            }
        }
        if let Some(m) = ch.get("maglev") {
            let size = m.at().num("tableSize").unwrap_or(0.0);
            let problem = if size == 0.0 {
                Some("maglev needs `tableSize`")
            } else if size >= 5_000_011.0 {
                Some("maglev tableSize must be less than 5000011")
            } else if size.fract() != 0.0 || !is_prime(size as u64) {
                Some("maglev tableSize must be a prime number")
            } else {
                None
            };
            if let Some(p) = problem {
                self.refuse(codes::INVALID_TRAFFIC_POLICY, r, &m.path, p);
            }
        }
    }

    fn locality_lb(&mut self, r: &Resource, at: At<'_, '_>, has_outlier: bool) {
        let distribute = at.items("distribute");
        let failover = at.items("failover");
        let priority = at.strings("failoverPriority");
        if !distribute.is_empty() && !failover.is_empty() {
            self.refuse(
                codes::INVALID_TRAFFIC_POLICY,
                r,
                at.path,
                "`distribute` and `failover` cannot be set together",
            );
            return;
        }
        if !failover.is_empty()
            && let Some(label) = priority.iter().find(|p| TOPOLOGY_LABELS.contains(p))
        {
            self.refuse(codes::INVALID_TRAFFIC_POLICY, r, at.path, format!("`failover` and topology label `{label}` in failoverPriority cannot be set together"));
            return;
        }
        let mut sources = Vec::new();
        for d in &distribute {
            let d = d.at();
            sources.push(d.str_or_empty("from").to_owned());
            let to = d.entries("to");
            let mut total = 0.0;
            for (_, w) in &to {
                let w = w.value.as_f64().unwrap_or(0.0);
                if w <= 0.0 || w > 100.0 {
                    self.refuse(
                        codes::INVALID_TRAFFIC_POLICY,
                        r,
                        d.path,
                        "locality weights must be in 1..100",
                    );
                    return;
                }
                total += w;
            }
            if total != 100.0 {
                self.refuse(
                    codes::INVALID_TRAFFIC_POLICY,
                    r,
                    d.path,
                    format!("locality weights add up to {total}, not 100"),
                );
                return;
            }
            let destinations: Vec<String> = to.into_iter().map(|(k, _)| k).collect();
            if let Err(e) = validate_localities(&destinations) {
                self.refuse(codes::INVALID_TRAFFIC_POLICY, r, d.path, e);
            }
        }
        if let Err(e) = validate_localities(&sources) {
            self.refuse(codes::INVALID_TRAFFIC_POLICY, r, at.path, e);
        }
        self.failover(
            r,
            at,
            &failover,
            !priority.is_empty(),
            has_outlier,
            "locality lb failover",
        );
    }

    fn zone_aware_lb(&mut self, r: &Resource, at: At<'_, '_>, has_outlier: bool) {
        let priority = at.strings("failoverPriority");
        for label in priority.iter().filter(|p| TOPOLOGY_LABELS.contains(p)) {
            self.refuse(codes::INVALID_TRAFFIC_POLICY, r, at.path, format!("failoverPriority of a zone aware load balancer must not use topology label `{label}`; region and zone routing are automatic"));
        }
        let failover = at.items("failover");
        self.failover(
            r,
            at,
            &failover,
            !priority.is_empty(),
            has_outlier,
            "zone aware lb failover",
        );
    }

    fn failover(
        &mut self,
        r: &Resource,
        at: At<'_, '_>,
        failover: &[Field<'_>],
        priority: bool,
        has_outlier: bool,
        what: &str,
    ) {
        if (!failover.is_empty() || priority) && !has_outlier {
            self.warning(
                codes::ISTIO_WARNING,
                r,
                at.path,
                "failover needs an outlier detection policy to take effect".into(),
                Some("add `outlierDetection` to the traffic policy".into()),
            );
        }
        for f in failover {
            let (from, to) = (f.at().str_or_empty("from"), f.at().str_or_empty("to"));
            if from == to {
                self.refuse(
                    codes::INVALID_TRAFFIC_POLICY,
                    r,
                    &f.path,
                    format!("{what} must name different regions"),
                );
            }
            if from.contains('/') || to.contains('/') {
                self.refuse(
                    codes::INVALID_TRAFFIC_POLICY,
                    r,
                    &f.path,
                    format!("{what} names regions only"),
                );
            }
            if from.contains('*') || to.contains('*') {
                self.refuse(
                    codes::INVALID_TRAFFIC_POLICY,
                    r,
                    &f.path,
                    format!("{what} regions cannot contain `*`"),
                );
            }
        }
    }
}

/// Envoy's primality test for maglev table sizes.
fn is_prime(x: u64) -> bool {
    if x != 0 && x < 4 {
        return true;
    }
    if x & 1 == 0 {
        return false;
    }
    let mut f = 3;
    while f * f <= x {
        if x.is_multiple_of(f) {
            return false;
        }
        f += 2;
    }
    true
}

/// Istio's `validateLocalities`: `region[/zone[/subzone]]`, one `*` at most and only at the
/// end, no empty part, none overlapping another.
fn validate_localities(localities: &[String]) -> Result<(), String> {
    let mut taken: Vec<Vec<&str>> = Vec::new();
    for locality in localities {
        let stars = locality.matches('*').count();
        if stars > 1 || (stars == 1 && !locality.ends_with('*')) {
            return Err(format!(
                "locality `{locality}`: a `*` may stand only once, at the end"
            ));
        }
        let parts: Vec<&str> = locality.splitn(3, '/').collect();
        if parts.iter().any(|p| p.is_empty()) {
            return Err(format!(
                "locality `{locality}` must not have an empty region, zone or subzone"
            ));
        }
        // A locality overlaps an earlier one that is its prefix, an earlier `*` standing for
        // every name at its level.
        let overlaps = taken
            .iter()
            .any(|t| t.iter().zip(&parts).all(|(a, b)| a == b || *a == "*"));
        if overlaps {
            return Err(format!("locality `{locality}` overlaps with one before it"));
        }
        taken.push(parts);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn primes_and_localities() {
        assert!(is_prime(65537) && is_prime(2) && !is_prime(65536) && !is_prime(0));
        let l = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert!(validate_localities(&l(&["us-east", "us-west/zone1"])).is_ok());
        assert!(validate_localities(&l(&["us-east/*", "us-east/zone1"])).is_err());
        assert!(validate_localities(&l(&["us-east", "us-east"])).is_err());
        assert!(validate_localities(&l(&["*/zone"])).is_err());
        assert!(validate_localities(&l(&["a//b"])).is_err());
    }
}

/*
 * access.c - admin rights (see access.h).
 */
#include "access.h"

#include <grp.h>
#include <unistd.h>

#include "log.h"

void access_init(access_policy *a, const config *cfg)
{
	a->cfg = cfg;
	a->self = geteuid();
	access_reload(a);
}

void access_reload(access_policy *a)
{
	struct group *g;

	a->have_admin_gid = false;
	if (!a->cfg->access.admin_group[0])
		return;
	g = getgrnam(a->cfg->access.admin_group);
	if (!g) {
		log_warn("access.admin_group \"%s\" does not exist: nobody is admin through it",
			 a->cfg->access.admin_group);
		return;
	}
	a->admin_gid = g->gr_gid;
	a->have_admin_gid = true;
}

bool access_is_admin(const access_policy *a, const conn *c)
{
	const config *cfg = a->cfg;

	if (c->uid == 0 || c->uid == a->self)
		return true;
	for (uint32_t i = 0; i < cfg->access.n_admin_uids; i++)
		if (cfg->access.admin_uids[i] == c->uid)
			return true;
	if (a->have_admin_gid) {
		if (c->gid == a->admin_gid)
			return true;
		for (uint32_t i = 0; i < c->n_groups; i++)
			if (c->groups[i] == a->admin_gid)
				return true;
	}
	return false;
}

/*
 * access.h - who may do what: the one place admin rights are decided.
 *
 * Admins are root, the daemon's own uid, access.admin_uids and members of
 * access.admin_group (by primary gid or by a supplementary group the kernel
 * reported through SO_PEERGROUPS). Everyone else may call ordinary ops and
 * the read-only built-ins.
 */
#ifndef LMMS_ACCESS_H
#define LMMS_ACCESS_H

#include <stdbool.h>
#include <sys/types.h>

#include "config.h"
#include "server.h"

typedef struct access_policy {
	const config *cfg;
	uid_t self; /* the daemon's effective uid */
	gid_t admin_gid;
	bool have_admin_gid;
} access_policy;

void access_init(access_policy *a, const config *cfg);
/* Resolve access.admin_group again (after a reload). */
void access_reload(access_policy *a);
bool access_is_admin(const access_policy *a, const conn *c);

#endif

// Run by the store-setup container of deploy/compose.yaml, inside the store container's
// network namespace: on the first run no user exists yet, and MongoDB's localhost exception
// lets this script start the replica set and create the administrator. Every run then
// creates or updates each service's user, with readWrite on its own database only.
const env = process.env;
const admin = db.getSiblingDB("admin");

function signIn() {
  try {
    admin.auth(env.STORE_ADMIN_USER, env.STORE_ADMIN_PASSWORD);
    return true;
  } catch (error) {
    return false;
  }
}

if (!signIn()) {
  try {
    rs.initiate({ _id: "rs0", members: [{ _id: 0, host: "mongodb:27017" }] });
  } catch (error) {
    if (error.codeName !== "AlreadyInitialized") throw error;
  }
  while (!db.hello().isWritablePrimary) sleep(500);
  admin.createUser({ user: env.STORE_ADMIN_USER, pwd: env.STORE_ADMIN_PASSWORD,
                     roles: [{ role: "root", db: "admin" }] });
  if (!signIn()) throw new Error("the administrator just created cannot sign in");
}

for (const service of env.HOCVU_SERVICES.split(",")) {
  const user = `hocvu-${service}`;
  const pwd = env[`STORE_PASSWORD_${service.toUpperCase()}`];
  const roles = [{ role: "readWrite", db: `hocvu_${service}` }];
  if (admin.getUser(user)) {
    admin.updateUser(user, { pwd, roles });
  } else {
    admin.createUser({ user, pwd, roles });
  }
  print(`store user ${user}: readWrite on hocvu_${service}`);
}

-- A database made by hub-core 0.1.0 (main before issue 11, Alembic revision 0001):
-- two connections with their secrets in plain text, and one catalog product.
BEGIN TRANSACTION;
CREATE TABLE alembic_version (
	version_num VARCHAR(32) NOT NULL, 
	CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num)
);
INSERT INTO "alembic_version" VALUES('0001');
CREATE TABLE catalog_products (
	id INTEGER NOT NULL, 
	sku VARCHAR(200) NOT NULL, 
	title TEXT NOT NULL, 
	quantity INTEGER NOT NULL, 
	price NUMERIC(14, 4) NOT NULL, 
	upc VARCHAR(40), 
	msrp NUMERIC(14, 4), 
	cost NUMERIC(14, 4), 
	change_seq BIGINT NOT NULL, 
	updated_at DATETIME NOT NULL, 
	CONSTRAINT pk_catalog_products PRIMARY KEY (id), 
	CONSTRAINT uq_catalog_products_sku UNIQUE (sku)
);
INSERT INTO "catalog_products" VALUES(1,'KEEP-1','Kept',3,4.5,NULL,NULL,NULL,1,'2026-12-02 20:49:17.264281');
CREATE TABLE connections (
	id INTEGER NOT NULL, 
	name VARCHAR(200) NOT NULL, 
	channel VARCHAR(100) NOT NULL, 
	config JSON NOT NULL, 
	settings JSON NOT NULL, 
	health VARCHAR(40) NOT NULL, 
	health_message TEXT NOT NULL, 
	created_at DATETIME NOT NULL, 
	updated_at DATETIME NOT NULL, 
	CONSTRAINT pk_connections PRIMARY KEY (id), 
	CONSTRAINT uq_connections_name UNIQUE (name)
);
INSERT INTO "connections" VALUES(1,'ca-shop','channeladvisor','{"access_token": "today-access-token-1f2e3d", "refresh_token": "today-refresh-token-4c5b6a", "profile_id": 12345678, "application_id": "today-app", "shared_secret": "today-shared-secret-7d8e9f", "base_url": "http://127.0.0.1:9"}','{}','unknown','','2026-12-02 20:48:58.518491','2026-12-02 20:48:58.518505');
INSERT INTO "connections" VALUES(2,'fake-shop','fake','{"store": "/nonexistent/fake.json", "api_key": "today-fake-api-key-0a1b2c"}','{"order_days": 3}','unknown','','2026-12-02 20:49:00.776149','2026-12-02 20:49:04.235647');
CREATE TABLE counters (
	name VARCHAR(50) NOT NULL, 
	value BIGINT NOT NULL, 
	CONSTRAINT pk_counters PRIMARY KEY (name)
);
INSERT INTO "counters" VALUES('catalog',1);
CREATE TABLE listings (
	id INTEGER NOT NULL, 
	connection_id INTEGER NOT NULL, 
	product_id INTEGER NOT NULL, 
	sku VARCHAR(200) NOT NULL, 
	status VARCHAR(20) NOT NULL, 
	channel_product_id VARCHAR(100), 
	message TEXT NOT NULL, 
	pushed_quantity INTEGER, 
	pushed_price NUMERIC(14, 4), 
	pending BOOLEAN NOT NULL, 
	linked_at DATETIME, 
	synced_at DATETIME, 
	CONSTRAINT pk_listings PRIMARY KEY (id), 
	CONSTRAINT fk_listings_connection_id_connections FOREIGN KEY(connection_id) REFERENCES connections (id) ON DELETE CASCADE, 
	CONSTRAINT fk_listings_product_id_catalog_products FOREIGN KEY(product_id) REFERENCES catalog_products (id) ON DELETE CASCADE, 
	CONSTRAINT uq_listings_connection_id UNIQUE (connection_id, sku)
);
CREATE TABLE order_lines (
	id INTEGER NOT NULL, 
	order_id INTEGER NOT NULL, 
	channel_line_id VARCHAR(100) NOT NULL, 
	sku VARCHAR(200) NOT NULL, 
	title TEXT, 
	quantity INTEGER NOT NULL, 
	unit_price NUMERIC(14, 4), 
	CONSTRAINT pk_order_lines PRIMARY KEY (id), 
	CONSTRAINT fk_order_lines_order_id_orders FOREIGN KEY(order_id) REFERENCES orders (id) ON DELETE CASCADE
);
CREATE TABLE orders (
	id INTEGER NOT NULL, 
	connection_id INTEGER NOT NULL, 
	channel_order_id VARCHAR(100) NOT NULL, 
	status VARCHAR(30) NOT NULL, 
	hold_reason TEXT, 
	shipping_text VARCHAR(300) NOT NULL, 
	shipping_policy VARCHAR(200), 
	marketplace VARCHAR(200), 
	marketplace_order_id VARCHAR(200), 
	currency VARCHAR(10), 
	totals JSON NOT NULL, 
	addresses JSON NOT NULL, 
	raw JSON NOT NULL, 
	channel_created_at DATETIME, 
	imported_at DATETIME NOT NULL, 
	acknowledged_at DATETIME, 
	run_id INTEGER, 
	CONSTRAINT pk_orders PRIMARY KEY (id), 
	CONSTRAINT fk_orders_connection_id_connections FOREIGN KEY(connection_id) REFERENCES connections (id) ON DELETE CASCADE, 
	CONSTRAINT fk_orders_run_id_runs FOREIGN KEY(run_id) REFERENCES runs (id) ON DELETE SET NULL, 
	CONSTRAINT uq_orders_connection_id UNIQUE (connection_id, channel_order_id)
);
CREATE TABLE run_records (
	id INTEGER NOT NULL, 
	run_id INTEGER NOT NULL, 
	ref VARCHAR(300) NOT NULL, 
	outcome VARCHAR(20) NOT NULL, 
	message TEXT NOT NULL, 
	CONSTRAINT pk_run_records PRIMARY KEY (id), 
	CONSTRAINT fk_run_records_run_id_runs FOREIGN KEY(run_id) REFERENCES runs (id) ON DELETE CASCADE
);
CREATE TABLE runs (
	id INTEGER NOT NULL, 
	connection_id INTEGER, 
	connection_name VARCHAR(200), 
	operation VARCHAR(50) NOT NULL, 
	status VARCHAR(20) NOT NULL, 
	counts JSON NOT NULL, 
	message TEXT NOT NULL, 
	started_at DATETIME NOT NULL, 
	finished_at DATETIME, 
	CONSTRAINT pk_runs PRIMARY KEY (id), 
	CONSTRAINT fk_runs_connection_id_connections FOREIGN KEY(connection_id) REFERENCES connections (id) ON DELETE SET NULL
);
INSERT INTO "runs" VALUES(1,NULL,NULL,'catalog_import','ok','{"created": 1, "updated": 0, "unchanged": 0}','','2026-12-02 20:49:17.240449','2026-12-02 20:49:17.280477');
CREATE TABLE shipment_lines (
	id INTEGER NOT NULL, 
	shipment_id INTEGER NOT NULL, 
	order_line_id INTEGER NOT NULL, 
	quantity INTEGER NOT NULL, 
	CONSTRAINT pk_shipment_lines PRIMARY KEY (id), 
	CONSTRAINT fk_shipment_lines_order_line_id_order_lines FOREIGN KEY(order_line_id) REFERENCES order_lines (id) ON DELETE CASCADE, 
	CONSTRAINT fk_shipment_lines_shipment_id_shipments FOREIGN KEY(shipment_id) REFERENCES shipments (id) ON DELETE CASCADE
);
CREATE TABLE shipments (
	id INTEGER NOT NULL, 
	order_id INTEGER NOT NULL, 
	tracking VARCHAR(200) NOT NULL, 
	carrier VARCHAR(100) NOT NULL, 
	shipping_class VARCHAR(100) NOT NULL, 
	shipped_at DATETIME NOT NULL, 
	complete BOOLEAN NOT NULL, 
	sync_status VARCHAR(20) NOT NULL, 
	sync_error TEXT, 
	attempts INTEGER NOT NULL, 
	sent_at DATETIME, 
	created_at DATETIME NOT NULL, 
	CONSTRAINT pk_shipments PRIMARY KEY (id), 
	CONSTRAINT fk_shipments_order_id_orders FOREIGN KEY(order_id) REFERENCES orders (id) ON DELETE CASCADE
);
CREATE TABLE shipping_mappings (
	id INTEGER NOT NULL, 
	connection_id INTEGER NOT NULL, 
	channel_text VARCHAR(300) NOT NULL, 
	policy VARCHAR(200) NOT NULL, 
	created_at DATETIME NOT NULL, 
	CONSTRAINT pk_shipping_mappings PRIMARY KEY (id), 
	CONSTRAINT fk_shipping_mappings_connection_id_connections FOREIGN KEY(connection_id) REFERENCES connections (id) ON DELETE CASCADE, 
	CONSTRAINT uq_shipping_mappings_connection_id UNIQUE (connection_id, channel_text)
);
CREATE TABLE sync_cursors (
	id INTEGER NOT NULL, 
	connection_id INTEGER NOT NULL, 
	name VARCHAR(50) NOT NULL, 
	value BIGINT NOT NULL, 
	updated_at DATETIME NOT NULL, 
	CONSTRAINT pk_sync_cursors PRIMARY KEY (id), 
	CONSTRAINT fk_sync_cursors_connection_id_connections FOREIGN KEY(connection_id) REFERENCES connections (id) ON DELETE CASCADE, 
	CONSTRAINT uq_sync_cursors_connection_id UNIQUE (connection_id, name)
);
CREATE INDEX ix_catalog_products_change_seq ON catalog_products (change_seq);
CREATE INDEX ix_listings_pending ON listings (connection_id, pending);
CREATE INDEX ix_listings_product_id ON listings (product_id);
CREATE INDEX ix_runs_connection_id ON runs (connection_id);
CREATE INDEX ix_orders_marketplace ON orders (connection_id, marketplace_order_id);
CREATE INDEX ix_orders_status ON orders (status);
CREATE INDEX ix_orders_unacknowledged ON orders (connection_id, acknowledged_at);
CREATE INDEX ix_run_records_run_id ON run_records (run_id);
CREATE INDEX ix_order_lines_order_id ON order_lines (order_id);
CREATE INDEX ix_shipments_order_id ON shipments (order_id);
CREATE INDEX ix_shipments_sync_status ON shipments (sync_status);
CREATE INDEX ix_shipment_lines_order_line_id ON shipment_lines (order_line_id);
CREATE INDEX ix_shipment_lines_shipment_id ON shipment_lines (shipment_id);
COMMIT;

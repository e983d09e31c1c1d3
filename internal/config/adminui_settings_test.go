package config

// Samples of the Admin UI settings for TestEverySettingFromEnvAndFlag, kept
// apart from the main table.
func init() {
	for k, v := range map[string][4]string{
		"ADMIN_UI":           {"true", "true", "1", "true"},
		"ADMIN_UI_USERNAME":  {"ops", "ops", "admin", "admin"},
		"ADMIN_UI_PASSWORD":  {"$2a$10$x", "$2a$10$x", "$2b$12$y", "$2b$12$y"},
		"ADMIN_UI_READONLY":  {"true", "true", "t", "true"},
		"ADMIN_UI_SERVER_ID": {"eu-1", "eu-1", "us-2", "us-2"},
		"ADMIN_UI_MODE":      {"production", "production", "development", "development"},
	} {
		sample[k] = v
	}
}

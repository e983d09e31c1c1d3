// Package mongostore reads express-session sessions as connect-mongo (5.x,
// 6.x) writes them, and users from a users collection, with the official Go
// driver. It implements auth.SessionStore and auth.UserStore.
package mongostore

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.mongodb.org/mongo-driver/v2/x/mongo/driver/connstring"

	"github.com/tradewire/tradewire/auth"
)

// DefaultSessionsCollection is connect-mongo's default collection name.
const DefaultSessionsCollection = "sessions"

// Connect creates a client for uri (the driver connects lazily) and returns
// it with the database named in the URI path, as connect-mongo's dbName
// defaults to. extra options are applied after the URI.
func Connect(uri string, extra ...*options.ClientOptions) (*mongo.Client, *mongo.Database, error) {
	cs, err := connstring.Parse(uri)
	if err != nil {
		return nil, nil, fmt.Errorf("mongostore: parse URI: %w", err)
	}
	if cs.Database == "" {
		return nil, nil, errors.New("mongostore: the MongoDB URI has no database name in its path")
	}
	opts := append([]*options.ClientOptions{options.Client().ApplyURI(uri)}, extra...)
	c, err := mongo.Connect(opts...)
	if err != nil {
		return nil, nil, fmt.Errorf("mongostore: connect: %w", err)
	}
	return c, c.Database(cs.Database), nil
}

// Sessions reads connect-mongo documents {_id: sid, expires: Date,
// session: <JSON string or embedded document>}.
type Sessions struct {
	coll *mongo.Collection
}

// NewSessions reads sessions from collection in db (default "sessions").
func NewSessions(db *mongo.Database, collection string) *Sessions {
	if collection == "" {
		collection = DefaultSessionsCollection
	}
	return &Sessions{coll: db.Collection(collection)}
}

// Name returns "mongo".
func (s *Sessions) Name() string { return "mongo" }

// sessionDoc is a connect-mongo document.
type sessionDoc struct {
	ID      string        `bson:"_id"`
	Expires bson.RawValue `bson:"expires"`
	Session bson.RawValue `bson:"session"`
}

// Get implements auth.SessionStore with findOne({_id: sid}); the
// authenticator checks expires itself, so expired documents that
// autoRemove has not deleted yet are reported as expired, not missing.
func (s *Sessions) Get(ctx context.Context, sid string) (*auth.Session, error) {
	var d sessionDoc
	err := s.coll.FindOne(ctx, bson.D{{Key: "_id", Value: sid}}).Decode(&d)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return nil, auth.ErrNoSession
	}
	if err != nil {
		return nil, fmt.Errorf("mongostore: find session: %w", err)
	}
	return d.session(), nil
}

// GetMany implements auth.SessionStore with one find({_id: {$in: sids}}).
func (s *Sessions) GetMany(ctx context.Context, sids []string) (map[string]*auth.Session, error) {
	out := make(map[string]*auth.Session, len(sids))
	if len(sids) == 0 {
		return out, nil
	}
	cur, err := s.coll.Find(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: sids}}}})
	if err != nil {
		return nil, fmt.Errorf("mongostore: find sessions: %w", err)
	}
	defer cur.Close(ctx)
	for cur.Next(ctx) {
		var d sessionDoc
		if err := cur.Decode(&d); err != nil {
			continue // not a connect-mongo document (e.g. non-string _id): not a session we asked for
		}
		out[d.ID] = d.session()
	}
	if err := cur.Err(); err != nil {
		return nil, fmt.Errorf("mongostore: find sessions: %w", err)
	}
	return out, nil
}

// session converts the document. A document whose fields have unexpected
// types gets nil Data, which the authenticator reports as unreadable.
func (d *sessionDoc) session() *auth.Session {
	s := &auth.Session{ID: d.ID}
	switch d.Expires.Type {
	case 0, bson.TypeNull, bson.TypeUndefined: // no expiry, as connect-mongo's get allows
	case bson.TypeDateTime:
		s.Expires = d.Expires.Time().UTC()
	default:
		return s
	}
	switch d.Session.Type {
	case bson.TypeString: // stringify: true (the default)
		s.Data = []byte(d.Session.StringValue())
	case bson.TypeEmbeddedDocument: // stringify: false
		if js, err := bson.MarshalExtJSON(d.Session.Document(), false, false); err == nil {
			s.Data = js
		}
	}
	return s
}

// UsersConfig names the users collection and its fields. Dotted field names
// ("profile.tier") reach into embedded documents.
type UsersConfig struct {
	Collection string // default "users"
	IDField    string // default "_id"
	RoleField  string // default "role"
	TierField  string // default "subscriptionTier"
}

// Users reads role and subscription tier from a users collection.
type Users struct {
	coll *mongo.Collection
	cfg  UsersConfig
}

// NewUsers reads users from db as cfg describes.
func NewUsers(db *mongo.Database, cfg UsersConfig) *Users {
	if cfg.Collection == "" {
		cfg.Collection = "users"
	}
	if cfg.IDField == "" {
		cfg.IDField = "_id"
	}
	if cfg.RoleField == "" {
		cfg.RoleField = "role"
	}
	if cfg.TierField == "" {
		cfg.TierField = "subscriptionTier"
	}
	return &Users{coll: db.Collection(cfg.Collection), cfg: cfg}
}

// Name returns "mongo-users".
func (u *Users) Name() string { return "mongo-users" }

// User implements auth.UserStore. An id that is 24 hex digits matches both
// an ObjectID and the plain string, in one query.
func (u *Users) User(ctx context.Context, id string) (*auth.User, error) {
	var match any = id
	if oid, err := bson.ObjectIDFromHex(id); err == nil {
		match = bson.D{{Key: "$in", Value: bson.A{oid, id}}}
	}
	proj := bson.D{{Key: u.cfg.RoleField, Value: 1}, {Key: u.cfg.TierField, Value: 1}}
	var doc bson.Raw
	err := u.coll.FindOne(ctx, bson.D{{Key: u.cfg.IDField, Value: match}}, options.FindOne().SetProjection(proj)).Decode(&doc)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return nil, auth.ErrNoUser
	}
	if err != nil {
		return nil, fmt.Errorf("mongostore: find user: %w", err)
	}
	return &auth.User{ID: id, Role: stringField(doc, u.cfg.RoleField), Tier: stringField(doc, u.cfg.TierField)}, nil
}

// stringField returns the string at a dotted path, or "" if absent or not a
// string.
func stringField(doc bson.Raw, path string) string {
	v, err := doc.LookupErr(strings.Split(path, ".")...)
	if err != nil {
		return ""
	}
	s, _ := v.StringValueOK()
	return s
}
